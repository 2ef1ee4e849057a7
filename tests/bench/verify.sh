#!/usr/bin/env bash
# Figures for `wrapkit verify` and the validator (issue 3), side by side in one run:
#   1. verify of a 100 MB payload vs sha256sum of the same file (ratio);
#   2. time and peak memory to reject the overlapping-entry zip bomb (~5.5 GB declared).
# Needs hyperfine and /usr/bin/time. Usage: tests/bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "error: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p wrapkit
wk=$PWD/target/release/wrapkit
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/app"
echo 'print("big")' > "$tmp/app/main.lua"
head -c 100000000 /dev/urandom > "$tmp/app/asset.bin"
"$wk" pack "$tmp/app" -o "$tmp/big" -q
hyperfine -N -w 2 -r 10 --export-json "$tmp/verify.json" "$wk verify $tmp/big" "sha256sum $tmp/big" >/dev/null
python3 - "$tmp/verify.json" <<'PY'
import json, sys
r = {x["command"].split()[0].rsplit("/", 1)[-1]: x for x in json.load(open(sys.argv[1]))["results"]}
v, s = r["wrapkit"]["median"], r["sha256sum"]["median"]
print(f"verify 100 MB payload: {v*1000:.0f} ms; sha256sum: {s*1000:.0f} ms; ratio {v/s:.2f}")
PY

WRAPKIT_WRITE_BOMB="$tmp/bomb" cargo test -q -p wrapkit --test e2e write_bomb_for_benchmarks -- --ignored >/dev/null 2>&1
size=$(stat -c %s "$tmp/bomb")
/usr/bin/time -f "%e %M" -o "$tmp/time" "$wk" ls "$tmp/bomb" >/dev/null 2>"$tmp/err" || true
read -r secs kb < <(tail -n 1 "$tmp/time")
echo "bomb: $size bytes ($(( size - $(stat -c %s target/stub/x86_64-unknown-linux-gnu/stub/wrapkit-stub) )) of payload), rejected in ${secs} s, peak RSS ${kb} KiB: $(head -c 160 "$tmp/err" | tr '\n' ' ')"
