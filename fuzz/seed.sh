#!/usr/bin/env bash
# Writes seed inputs for the fuzz targets: small packed files (a 4-byte "ELF" stub keeps them
# tiny) with directories, a symlink, stored and deflated entries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wrapkit=${WRAPKIT:-$here/../target/release/wrapkit}
[ -x "$wrapkit" ] || (cd "$here/.." && cargo build --release -q -p wrapkit)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '\177ELF' > "$tmp/stub"
for v in 1 2 3; do
  app="$tmp/app$v"
  mkdir -p "$app/lib/deep" "$app/empty"
  echo "print('x')" > "$app/main.lua"
  head -c $((v * 300)) "$here/../docs/format.md" > "$app/lib/deep/text.txt"
  echo "return 1" > "$app/lib/m.lua"
  ln -s lib/m.lua "$app/alias.lua"
done
for target in archive extract read; do
  mkdir -p "$here/corpus/$target"
  "$wrapkit" pack "$tmp/app1" -o "$here/corpus/$target/seed-auto" --runtime "$tmp/stub" -q
  "$wrapkit" pack "$tmp/app2" -o "$here/corpus/$target/seed-store" --runtime "$tmp/stub" -q --compression store
  "$wrapkit" pack "$tmp/app3" -o "$here/corpus/$target/seed-deflate" --runtime "$tmp/stub" -q --compression deflate
done
# A tiny static ELF stub with section headers, so one seed carries its archive in the
# .note.wrapkit section (format 2) and the fuzzer mutates the section header walk too.
if command -v cc >/dev/null; then
  printf 'void _start(void){for(;;);}\n' > "$tmp/tiny.c"
  cc -nostdlib -static -Os -s -Wl,-z,norelro -Wl,--build-id=none -o "$tmp/tiny" "$tmp/tiny.c"
  for target in archive extract read; do
    "$wrapkit" pack "$tmp/app1" -o "$here/corpus/$target/seed-note" --runtime "$tmp/tiny" -q
  done
fi
echo "seeds written to $here/corpus/"
