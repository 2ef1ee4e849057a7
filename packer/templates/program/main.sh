# A small wrapkit app run by a program bundled from the build machine (/bin/sh here, see
# wrapkit.toml): `wrapkit pack {{name}}` packs the shell with its libraries, and this script
# with its data, into ./{{name}}.run. Only the shell's builtins are used, so the packed file
# runs even alone in an empty chroot. The app's files are under $WRAPKIT_ROOT.
who=${1:-world}
while IFS= read -r line; do
    printf '%s, %s!\n' "$line" "$who"
done < "$WRAPKIT_ROOT/data/greeting.txt"
printf '(%s, run by %s)\n' "{{name}}" "$0"
