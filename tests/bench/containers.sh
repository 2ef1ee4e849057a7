#!/usr/bin/env bash
# The packed executable against a container image of the same app built the conventional way
# (docs/containers.md), side by side in one run, offline once the roots are built:
#
#   size   the packed file, its OCI image (`wrapkit deploy oci`), and a conventional image: a
#          `debootstrap --variant=minbase` bookworm root plus the distribution's interpreter
#          plus the app; raw and gzip -6 (what a registry stores)
#   warm   warm start: the packed file directly and alone in an empty chroot; the conventional
#          root under chroot; both images under `podman run`
#   cold   first start of the packed Python app (fills its cache) in a fresh directory, and
#          under podman (in the container's layer: --prefill does not take layers yet)
#   rss    peak RSS (GNU time) of each chroot run
#
# Two apps: a Lua hello (`print("hello")`, Debian's lua5.4 in the conventional image) and a
# Python hello (`print("hello")`, Debian's python3 in the conventional image; packed with
# /usr/bin/python3.11). Prints Markdown on stdout (also tests/bench/out/containers-summary.md).
#
# Needs root, debootstrap, podman with runc, hyperfine, GNU time, python3, the Debian mirror
# (only to build the roots, cached in tests/bench/out/containers-roots/; $WRAPKIT_DEBIAN_MIRROR
# overrides http://deb.debian.org/debian).
# usage: tests/bench/containers.sh [--quick] [--no-build]

set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

quick=0 build=1
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "containers.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "containers.sh: error: needs root (chroot, podman)" >&2; exit 1; }
for tool in debootstrap podman runc hyperfine /usr/bin/time python3 /usr/bin/python3.11; do
  command -v "$tool" >/dev/null || { echo "containers.sh: error: $tool is missing" >&2; exit 1; }
done
note() { echo "==> $*" >&2; }
unset NODE_EXTRA_CA_CERTS PYTHONDONTWRITEBYTECODE PYTHONPATH PYTHONHOME
if [ $quick = 1 ]; then runs=10 podman_runs=3; else runs=50 podman_runs=10; fi
# What this machine's podman needs (docs/deploy.md); ordinary hosts need none of it.
podman_run=(podman --cgroup-manager=cgroupfs run --rm --runtime runc --network=none
  --ulimit nofile=1024:1024 --ulimit nproc=1000:1000)

if [ $build = 1 ]; then
  note "cargo build --release"
  cargo build --release --quiet -p wrapkit
fi
wrapkit=${CARGO_TARGET_DIR:-$root/target}/release/wrapkit
mkdir -p tests/bench/out
# Lowercase: podman names an image loaded from oci:DIR after DIR, and refuses capitals.
work=$root/tests/bench/out/containers-work
rm -rf "$work"
mkdir -p "$work"
cleanup() {
  podman rmi -f localhost/wk-conv-lua localhost/wk-conv-python >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
summary=$root/tests/bench/out/containers-summary.md
: >"$summary"
out() { echo "$*" | tee -a "$summary"; }

# The conventional roots, built once: minbase plus the interpreter, apt's lists and caches
# removed (what a slim image does).
roots=$root/tests/bench/out/containers-roots
mirror=${WRAPKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
for lang in lua python; do
  dir=$roots/$lang
  [ -f "$dir.done" ] && continue
  pkg=$([ $lang = lua ] && echo lua5.4 || echo python3)
  note "debootstrap minbase + $pkg (once)"
  rm -rf "$dir"
  mkdir -p "$roots/debs"
  debootstrap --variant=minbase --include="$pkg" --cache-dir="$roots/debs" bookworm "$dir" "$mirror" \
    >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  touch "$dir.done"
done

note "apps, packed and in images"
mkdir -p "$work/lua" "$work/python"
echo 'print("hello")' >"$work/lua/main.lua"
echo 'print("hello")' >"$work/python/main.py"
"$wrapkit" pack -q "$work/lua" -o "$work/lua.wk"
"$wrapkit" pack -q "$work/python" --python /usr/bin/python3.11 -o "$work/python.wk"
for lang in lua python; do
  SOURCE_DATE_EPOCH=315532800 "$wrapkit" deploy oci -q "$work/$lang.wk" --name hello -o "$work/$lang-oci"
  mkdir -p "$work/$lang-alone"
  cp "$work/$lang.wk" "$work/$lang-alone/hello"
  conv=$work/$lang-conv
  cp -a "$roots/$lang" "$conv"
  mkdir -p "$conv/app"
  cp "$work/$lang"/main.* "$conv/app/"
  tar -C "$conv" -c . | podman import -q - "localhost/wk-conv-$lang" >/dev/null
done
mkdir -p "$work/python-alone/tmp"
conv_cmd_lua=(lua5.4 /app/main.lua)
conv_cmd_python=(python3 /app/main.py)

out "## Packed executable vs conventional container image ($(date -u +%F))"
out ""
out "### Size"
out ""
out "| | raw | gzip -6 |"
out "|---|---|---|"
gz() { gzip -6 -c | wc -c; }
mib() { python3 -c "print(f'{$1 / 2**20:.1f} MiB')"; }
blobs() { # the layers' compressed bytes and the whole layout's
  python3 - "$1" <<'EOF'
import json, os, sys
d = sys.argv[1]
index = json.load(open(os.path.join(d, "index.json")))
m = index["manifests"][0]["digest"].split(":")[1]
manifest = json.load(open(os.path.join(d, "blobs/sha256", m)))
print(sum(l["size"] for l in manifest["layers"]))
EOF
}
for lang in lua python; do
  f=$work/$lang.wk
  out "| $lang: packed file | $(mib "$(stat -c %s "$f")") | $(mib "$(gz <"$f")") |"
  out "| $lang: its OCI image (\`deploy oci\`) | | $(mib "$(blobs "$work/$lang-oci")") (layers) |"
  conv=$work/$lang-conv
  out "| $lang: conventional image (minbase + $([ $lang = lua ] && echo lua5.4 || echo python3)) | $(mib "$(du -sb "$conv" | cut -f1)") | $(mib "$(tar -C "$conv" -c . | gz)") |"
done
out ""

note "warm"
out "### Warm start and peak RSS"
out ""
out "| | warm mean | peak RSS |"
out "|---|---|---|"
export WRAPKIT_CACHE_DIR=$work/cache
"$work/python.wk" >/dev/null
rss() { for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p; }
row() { # name, runs, command...
  local name=$1 n=$2
  shift 2
  hyperfine -N -w 3 -r "$n" --export-json "$work/h.json" "$(printf '%q ' "$@")" >/dev/null 2>&1
  local mean
  mean=$(python3 -c "import json; print(f'{json.load(open(\"$work/h.json\"))[\"results\"][0][\"mean\"] * 1000:.1f} ms')")
  if [ "$1" = podman ]; then
    out "| $name | $mean | |"
  else
    out "| $name | $mean | $(rss "$@") KiB |"
  fi
}
for lang in lua python; do
  eval "conv_cmd=(\"\${conv_cmd_$lang[@]}\")"
  row "$lang: packed" "$runs" "$work/$lang.wk"
  if [ $lang = lua ]; then
    row "$lang: packed, alone in an empty chroot" "$runs" chroot "$work/$lang-alone" /hello
  else
    row "$lang: packed, alone in an empty chroot (cache in its /tmp)" "$runs" \
      env -i WRAPKIT_CACHE_DIR=/tmp/c /usr/sbin/chroot "$work/$lang-alone" /hello
  fi
  row "$lang: conventional root under chroot" "$runs" chroot "$work/$lang-conv" "${conv_cmd[@]}"
  if [ $lang = lua ]; then
    row "$lang: packed, podman run (OCI layout)" "$podman_runs" "${podman_run[@]}" "oci:$work/$lang-oci:latest"
  else
    # --prefill does not take apps with layers yet: each container fills its own cache.
    row "$lang: packed, podman run (OCI layout; fills its cache in each new container)" "$podman_runs" \
      "${podman_run[@]}" "oci:$work/$lang-oci:latest"
  fi
  row "$lang: conventional, podman run" "$podman_runs" "${podman_run[@]}" "localhost/wk-conv-$lang" "${conv_cmd[@]}"
done
out ""

note "cold"
out "### First start of the packed Python app (its cache filled)"
out ""
hyperfine -N -w 1 -r 5 --prepare "rm -rf $work/cold" --export-json "$work/cold.json" \
  -n "fresh cache" "env WRAPKIT_CACHE_DIR=$work/cold $work/python.wk" \
  -n "podman, cache in the container's layer" "$(printf '%q ' "${podman_run[@]}") oci:$work/python-oci:latest" \
  >/dev/null 2>&1 || true
python3 - "$work/cold.json" <<'EOF' | tee -a "$summary"
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"- {r['command']}: {r['mean'] * 1000:.0f} ms")
EOF
out ""
