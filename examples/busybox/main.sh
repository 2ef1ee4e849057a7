# A shell app run by the bundled busybox: no shell, coreutils or anything else is needed on the
# machine it runs on (it runs in an empty chroot). $WRAPKIT_ROOT is the materialised tree.
set -eu
echo "hello from $(basename "$0") in $(uname -s), pid $$"
echo "the 3 largest words in the bundled word list:"
awk '{ print length($0), $0 }' "$WRAPKIT_ROOT/words.txt" | sort -rn | head -n 3 | cut -d' ' -f2
if [ $# -gt 0 ]; then echo "you said: $*"; fi
