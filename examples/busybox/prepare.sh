#!/bin/sh
# Assembles the busybox example's app directory in OUT: main.sh, words.txt, a wrapkit.toml and a
# static busybox (Debian's busybox-static, or $BUSYBOX) as bin/busybox, with bin/sh and the
# applets main.sh uses linking to it (the manifest sets PATH to {root}/bin).
# Then: wrapkit pack OUT -o hello-bb && ./hello-bb some args
set -eu
out=${1:?usage: prepare.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-$(command -v busybox || true)}
[ -n "$busybox" ] || { echo "prepare.sh: no busybox; apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$out/bin"
cp "$here/main.sh" "$here/words.txt" "$out/"
cp "$here/wrapkit.toml.in" "$out/wrapkit.toml"
cp "$busybox" "$out/bin/busybox"
chmod 755 "$out/bin/busybox"
for applet in sh awk sort head cut uname basename; do
  ln -sf busybox "$out/bin/$applet"
done
