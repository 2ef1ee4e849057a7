#!/usr/bin/env bash
# Node app benchmarks (docs/interpreters.md, issue targets in docs/benchmarks.md "Node apps"),
# side by side in one run, with this machine's node:
#
#   warm   warm start of the packed hello vs the bundled node run directly from the cache tree
#          (target: ratio <= 1.02), the host's `node hello.js`, and a Node single executable
#          application (SEA) of the same script, built with postject from npm (pinned below)
#   rss    peak RSS of the same (target: packed <= bare + 2 MiB)
#   cold   first start (empty cache, on this machine's disk) vs the SEA, which reads in place
#          and so has no first start of its own
#   size   the packed file vs the SEA (target: <= 0.5x)
#
# Prints Markdown on stdout (also in tests/bench/out/node-summary.md); progress on stderr.
#
# Needs: hyperfine, node with SEA support (>= 20), npm and the npm registry (postject), GNU time
# (/usr/bin/time).
# usage: tests/bench/node.sh [--quick] [--no-build]

set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
postject_version=1.0.0-alpha.6

quick=0 build=1
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "node.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
for tool in hyperfine node npm /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "node.sh: error: $tool is missing" >&2; exit 1; }
done
note() { echo "==> $*" >&2; }
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS NODE_PATH
if [ $quick = 1 ]; then runs=30 cold_runs=3; else runs=100 cold_runs=10; fi

if [ $build = 1 ]; then
  note "cargo build --release"
  cargo build --release --quiet -p wrapkit
fi
wrapkit=${CARGO_TARGET_DIR:-$root/target}/release/wrapkit
node=$(readlink -f "$(command -v node)")
mkdir -p tests/bench/out
work=$(mktemp -d "$root/tests/bench/out/node.XXXXXX")
trap 'rm -rf "$work"' EXIT
summary=$root/tests/bench/out/node-summary.md
: >"$summary"
out() { echo "$*" | tee -a "$summary"; }

mkdir -p "$work/hello"
echo 'console.log("hello")' >"$work/hello/index.js"

note "pack with $node"
cache=$work/cache
export WRAPKIT_CACHE_DIR=$cache
"$wrapkit" pack -q "$work/hello" --node "$node" -o "$work/hello.wk"
"$work/hello.wk" >/dev/null
tree=$(for m in "$cache"/bundles-v1/*.ok; do echo "${m%.ok}"; done | head -1)
bundled=$(readlink -f "$tree/.layers/node")/bin/node

note "SEA with postject $postject_version"
(cd "$work" && npm install -q --no-audit --no-fund --loglevel=error "postject@$postject_version" >/dev/null)
cat >"$work/sea.json" <<EOF
{"main": "$work/hello/index.js", "output": "$work/prep.blob", "disableExperimentalSEAWarning": true}
EOF
node --experimental-sea-config "$work/sea.json" >/dev/null
cp "$node" "$work/hello-sea"
"$work/node_modules/.bin/postject" "$work/hello-sea" NODE_SEA_BLOB "$work/prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >/dev/null 2>&1
[ "$("$work/hello-sea")" = hello ] || { echo "node.sh: error: the SEA does not print hello" >&2; exit 1; }

out "## Node apps ($(date -u +%F), node $(node --version), postject $postject_version)"
out ""
note "warm"
json=$work/warm.json
hyperfine -N -w 10 -r "$runs" --export-json "$json" \
  -n packed "$work/hello.wk" \
  -n direct "$bundled $tree/index.js" \
  -n bare "$node $work/hello/index.js" \
  -n sea "$work/hello-sea" >/dev/null 2>&1
out "| | warm mean | vs direct | peak RSS (median of 5) |"
out "|---|---|---|---|"
python3 - "$json" <<'EOF' >"$work/warm.txt"
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
for name, mean in r.items():
    print(name, f"{mean * 1000:.2f}", f"{mean / r['direct']:.3f}")
EOF
while read -r name mean ratio; do
  case $name in
    packed) cmd=("$work/hello.wk") ;;
    direct) cmd=("$bundled" "$tree/index.js") ;;
    bare) cmd=("$node" "$work/hello/index.js") ;;
    sea) cmd=("$work/hello-sea") ;;
  esac
  rss=$(for _ in 1 2 3 4 5; do /usr/bin/time -f %M "${cmd[@]}" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p)
  out "| $name | $mean ms | ${ratio}x | $rss KiB |"
done <"$work/warm.txt"
out ""

note "cold"
cold=$work/cold.json
hyperfine -N -w 1 -r "$cold_runs" --export-json "$cold" \
  --prepare "rm -rf $work/cold-cache" \
  -n packed "env WRAPKIT_CACHE_DIR=$work/cold-cache $work/hello.wk" \
  -n sea "$work/hello-sea" >/dev/null 2>&1
python3 - "$cold" "$work/hello.wk" "$work/hello-sea" "$node" <<'EOF' | tee -a "$summary"
import json, os, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"first start: packed {r['packed'] * 1000:.0f} ms (fills the cache), SEA {r['sea'] * 1000:.0f} ms"
      f" ({r['packed'] / r['sea']:.2f}x)")
size, sea, node = (os.path.getsize(p) for p in sys.argv[2:5])
print(f"\nsize: packed {size / 2**20:.1f} MiB, SEA {sea / 2**20:.1f} MiB ({size / sea:.2f}x; target <= 0.5x),"
      f" node itself {node / 2**20:.1f} MiB\n")
EOF
