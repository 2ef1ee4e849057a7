#!/usr/bin/env bash
# Exec-mode benchmarks (docs/benchmarks.md, "Exec mode"):
#
#   warm   warm start of a packed static program vs running the same program directly from its
#          materialised tree (target: ratio <= 1.05), for a 3-file and a 2,000-file payload
#   rss    peak RSS of the same two (target: within 1 MiB of the direct run)
#   layers warm start of a dynamically linked program bundled with --program (its libraries in a
#          layer, --libc host and bundle), 3 and 2,000 files, vs the program run directly from
#          its layer; and the patched program vs the launcher way (ld.so --library-path)
#   cold   first start (empty cache) of a 50 MB / 2,000-file payload vs `unzip -q` of the same
#          archive into an empty directory (target: <= 0.5x), on disk and, as root, on tmpfs
#
# Every figure is a ratio against an anchor measured in the same run, in alternating rounds;
# absolute times on a shared VM drift. Prints Markdown on stdout (also written to
# tests/bench/out/exec-summary.md); progress on stderr.
#
# Needs: hyperfine, cc (static glibc: libc6-dev), unzip, python3, GNU time (/usr/bin/time).
# usage: tests/bench/exec.sh [--quick] [--no-build] [warm] [rss] [layers] [cold]

set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

quick=0 build=1 sections=()
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    warm | rss | layers | cold) sections+=("$a") ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "exec.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ ${#sections[@]} -gt 0 ] || sections=(warm rss layers cold)
for tool in hyperfine cc unzip python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "exec.sh: error: $tool is missing" >&2; exit 1; }
done
note() { echo "==> $*" >&2; }

if [ $build = 1 ]; then
  note "cargo build --release"
  cargo build --release --quiet -p wrapkit
fi
wrapkit=${CARGO_TARGET_DIR:-$root/target}/release/wrapkit
[ -x "$wrapkit" ] || { echo "exec.sh: error: $wrapkit not built" >&2; exit 1; }

if [ $quick = 1 ]; then rounds=2 runs=100 cold_runs=3; else rounds=4 runs=400 cold_runs=10; fi
mkdir -p tests/bench/out
work=$(mktemp -d "$root/tests/bench/out/exec.XXXXXX")
mounted=""
cleanup() {
  [ -n "$mounted" ] && umount -l "$mounted" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
json=$work/json
mkdir -p "$json"
summary=$root/tests/bench/out/exec-summary.md
: >"$summary"
out() { echo "$*" | tee -a "$summary"; }

# A static program that does nothing: the anchor is the cost of exec itself.
cat >"$work/true.c" <<'EOF'
int main(void) { return 0; }
EOF
cc -static -O2 -s -o "$work/true" "$work/true.c"
# The floor of any wrapper that execs: a static program that only execve()s its argument.
printf '#include <unistd.h>\nint main(int c, char **v, char **e) { (void)c; execve(v[1], v + 1, e); return 127; }\n' >"$work/execer.c"
cc -static -O2 -s -o "$work/execer" "$work/execer.c"
# The same, dynamically linked (libc only), and one needing a library that is not glibc.
cc -O2 -s -o "$work/truedyn" "$work/true.c"
printf '#include <zlib.h>\nint main(void) { return zlibVersion()[0] == 0; }\n' >"$work/truez.c"
cc -O2 -s -o "$work/truez" "$work/truez.c" -lz

make_app() { # dir files total_bytes
  local dir=$1 files=$2 total=$3
  mkdir -p "$dir/bin"
  cp "$work/true" "$dir/bin/true"
  printf 'name = "bench"\nexec = ["bin/true"]\n' >"$dir/wrapkit.toml"
  python3 - "$dir" "$files" "$total" <<'EOF'
import os, sys, random
d, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
size = max(total // max(n, 1), 1)
for i in range(n):
    sub = os.path.join(d, "data", "d%02d" % (i % 40))
    os.makedirs(sub, exist_ok=True)
    if i % 2:  # half incompressible, half text: a realistic mix for deflate
        b = rng.randbytes(size)
    else:
        b = (("line %d of file %d, some text to compress\n" % (i, i)) * (size // 30 + 1)).encode()[:size]
    open(os.path.join(sub, "f%04d.bin" % i), "wb").write(b)
EOF
}

# median of hyperfine JSON results, by command name
median() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join("%s=%.6f"%(r["command"],r["median"]) for r in d["results"]))' "$1"; }

# rounds of hyperfine over commands given as name=cmd pairs; prints "name median_ms" and ratio
# ranges of each command against the first.
race() { # label rounds runs name=cmd...
  local label=$1 n=$2 r=$3; shift 3
  local i names=() cmds=()
  for pair in "$@"; do names+=("${pair%%=*}"); cmds+=("${pair#*=}"); done
  for i in $(seq 1 "$n"); do
    local args=()
    local k order=()
    for k in "${!names[@]}"; do order+=("$k"); done
    [ $((i % 2)) = 0 ] && order=($(printf '%s\n' "${order[@]}" | tac))
    for k in "${order[@]}"; do args+=(-n "${names[$k]}" "${cmds[$k]}"); done
    hyperfine -N --warmup 20 --runs "$r" --export-json "$json/$label.$i.json" "${args[@]}" >&2
  done
  python3 - "$json" "$label" "$n" "${names[@]}" <<'EOF'
import json, sys, statistics
d, label, n, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
times = {k: [] for k in names}
per_round = {k: [] for k in names}
for i in range(1, n + 1):
    res = {r["command"]: r for r in json.load(open(f"{d}/{label}.{i}.json"))["results"]}
    for k in names:
        times[k] += res[k]["times"]
        per_round[k].append(res[k]["median"])
base = names[0]
print(f"| command | median | mean ± σ | ratio to `{base}` (per-round range) |")
print("|---|---|---|---|")
for k in names:
    med = statistics.median(times[k]) * 1e3
    mean = statistics.mean(times[k]) * 1e3
    sd = statistics.pstdev(times[k]) * 1e3
    ratio = statistics.median(times[k]) / statistics.median(times[base])
    rr = [a / b for a, b in zip(per_round[k], per_round[base])]
    print(f"| `{k}` | {med:.3f} ms | {mean:.3f} ± {sd:.3f} ms | {ratio:.3f} ({min(rr):.3f}–{max(rr):.3f}) |")
EOF
}

peak_rss() { # runs cmd... -> median peak RSS in KiB
  local i vals=()
  for i in $(seq 1 11); do
    /usr/bin/time -o "$work/rss" -f %M "$@" >/dev/null 2>&1
    vals+=("$(tail -1 "$work/rss")")
  done
  printf '%s\n' "${vals[@]}" | sort -n | sed -n 6p
}

out "## Exec mode"
out ""
out "Measured with \`tests/bench/exec.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r);"
out "rounds=$rounds, runs per round=$runs, cold runs=$cold_runs)."
out ""

export WRAPKIT_CACHE_DIR=$work/cache
for files in 3 2000; do
  make_app "$work/app$files" $((files - 1)) $((files * 1024))
  "$wrapkit" pack "$work/app$files" -o "$work/packed$files" -q
  "$work/packed$files" # fill the cache
done
# A realistic program: the host's python3 binary (its stdlib found at its compiled-in prefix),
# running `-c pass`.
python=$(readlink -f /usr/bin/python3 2>/dev/null || true)
if [ -x "$python" ]; then
  mkdir -p "$work/apppy/bin"
  cp "$python" "$work/apppy/bin/python3"
  printf 'name = "py"\nexec = ["bin/python3", "-c", "pass"]\n' >"$work/apppy/wrapkit.toml"
  "$wrapkit" pack "$work/apppy" -o "$work/packedpy" -q
  "$work/packedpy"
fi
tree_of() { # packed exe -> its tree (the payload's digest, as `wrapkit info` reads it)
  "$wrapkit" info --json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"].split(":")[1])' 
}

for s in "${sections[@]}"; do
  case $s in
  warm)
    note "warm start"
    out "### Warm start vs the program run directly"
    out ""
    out "A static \`int main(){return 0;}\` packed with \`exec = [\"bin/true\"]\`, cache filled; the"
    out "anchor runs the same binary straight from the materialised tree. The 2,000-file app adds"
    out "1 KiB data files in 40 directories; the warm check \`stat\`s the directories. \`exec-floor\` is"
    out "the least any wrapper that execs can cost: a static C program that only \`execve\`s the"
    out "same binary."
    out ""
    for files in 3 2000; do
      t=$WRAPKIT_CACHE_DIR/bundles-v1/$(tree_of "$work/packed$files")
      out "$files files:"
      out ""
      race "warm$files" $rounds $runs "direct=$t/bin/true" "exec-floor=$work/execer $t/bin/true" "packed=$work/packed$files" | tee -a "$summary"
      out ""
    done
    if [ -x "$work/packedpy" ]; then
      t=$WRAPKIT_CACHE_DIR/bundles-v1/$(tree_of "$work/packedpy")
      out "A real program: the host's \`$python\` packed as \`bin/python3\` with"
      out "\`exec = [\"bin/python3\", \"-c\", \"pass\"]\`, against the same binary run from the tree:"
      out ""
      race "warmpy" $rounds $((runs / 4)) "direct=$t/bin/python3 -c pass" "packed=$work/packedpy" | tee -a "$summary"
      out ""
    fi
    ;;
  rss)
    note "peak RSS"
    t3=$WRAPKIT_CACHE_DIR/bundles-v1/$(tree_of "$work/packed3")
    t2k=$WRAPKIT_CACHE_DIR/bundles-v1/$(tree_of "$work/packed2000")
    direct=$(peak_rss "$t3/bin/true")
    p3=$(peak_rss "$work/packed3")
    p2k=$(peak_rss "$work/packed2000")
    out "### Peak RSS (median of 11, \`/usr/bin/time -f %M\`; \`ru_maxrss\` spans the \`execve\`)"
    out ""
    out "| run | peak RSS | vs direct |"
    out "|---|---|---|"
    out "| direct \`bin/true\` | $direct KiB | |"
    out "| packed, 3 files, warm | $p3 KiB | +$((p3 - direct)) KiB |"
    out "| packed, 2,000 files, warm | $p2k KiB | +$((p2k - direct)) KiB |"
    if [ -x "$work/packedpy" ]; then
      tpy=$WRAPKIT_CACHE_DIR/bundles-v1/$(tree_of "$work/packedpy")
      dpy=$(peak_rss "$tpy/bin/python3" -c pass)
      ppy=$(peak_rss "$work/packedpy")
      out "| direct \`python3 -c pass\` | $dpy KiB | |"
      out "| packed \`python3 -c pass\`, warm | $ppy KiB | +$((ppy - dpy)) KiB |"
    fi
    out ""
    ;;
  layers)
    note "layers"
    out "### A dynamically linked program with its libraries (\`--program\`)"
    out ""
    out "\`truez\` (\`int main\` calling \`zlibVersion()\`, linked against libz) packed with"
    out "\`--program\`: the layer holds it with libz (and, in \`bundle\` mode, glibc and its loader);"
    out "its PT_INTERP and DT_RPATH slots hold the layer's absolute paths. The anchor runs the same"
    out "patched file straight from its layer. The 2,000-file app adds 1 KiB data files (40"
    out "directories) to the bundle: the warm check \`stat\`s directories, not files."
    out ""
    layer_of() { # packed exe -> its layer's tree (the one layer)
      local d
      for d in "$WRAPKIT_CACHE_DIR"/layers-v1/*/; do
        [ -d "$d" ] || continue
        grep -q "^libc $2\$" "${d%/}.ok" && [ -e "$d/bin/truez" ] && { echo "${d%/}"; return; }
      done
    }
    for libc in host bundle; do
      for files in 3 2000; do
        make_app "$work/dyn$libc$files" $((files - 1)) $((files * 1024))
        rm -f "$work/dyn$libc$files/wrapkit.toml" "$work/dyn$libc$files/bin/true"
        "$wrapkit" pack "$work/dyn$libc$files" --program "$work/truez" --libc $libc -o "$work/dyn$libc$files.packed" -q
        "$work/dyn$libc$files.packed"
      done
      l=$(layer_of x $libc)
      out "\`--libc $libc\`:"
      out ""
      race "layer$libc" $rounds $runs "direct=$l/bin/truez" "packed-3=$work/dyn${libc}3.packed" "packed-2000=$work/dyn${libc}2000.packed" | tee -a "$summary"
      out ""
    done
    l=$(layer_of x bundle)
    out "The two ways to run a bundled program on a bundled glibc, side by side: the patched file"
    out "run directly (what wrapkit does: honest \`/proc/self/exe\`) against the unpatched original run"
    out "through the bundled loader with \`--library-path\` (what a launcher would exec; it makes"
    out "\`/proc/self/exe\` the loader, and a launcher adds one more \`execve\` on top):"
    out ""
    race "launcher" $rounds $runs "patched=$l/bin/truez" "ld.so=$l/glibc/ld-linux-x86-64.so.2 --library-path $l/lib:$l/glibc $work/truez" | tee -a "$summary"
    out ""
    ;;
  cold)
    note "cold start"
    make_app "$work/big" 2000 $((50 * 1000 * 1000))
    "$wrapkit" pack "$work/big" -o "$work/big.packed" -q
    size=$(du -sb "$work/big" | cut -f1)
    out "### Cold start: 50 MB / 2,000 files vs \`unzip -q\`"
    out ""
    out "$(find "$work/big" -type f | wc -l) files, $size bytes, packed with the default compression"
    out "(payload $(($(stat -c %s "$work/big.packed") / 1000)) kB). Each run starts from an empty cache"
    out "(\`--prepare\` removes it); \`unzip -q\` extracts the same packed file into an empty directory."
    out "The packed run includes everything a first start does: validation, the digest check,"
    out "extraction on $(nproc) threads, \`syncfs\`, the renames and the marker, then the program."
    out ""
    places=("disk:$work/cold")
    if [ "$(id -u)" = 0 ]; then
      mkdir -p "$work/tmpfs"
      mount -t tmpfs -o size=400m,mode=700 tmpfs "$work/tmpfs" && mounted=$work/tmpfs && places+=("tmpfs:$work/tmpfs")
    fi
    for place in "${places[@]}"; do
      name=${place%%:*} dir=${place#*:}
      mkdir -p "$dir"
      out "On $name:"
      out ""
      hyperfine --runs $cold_runs --export-json "$json/cold-$name.json" \
        -n unzip --prepare "rm -rf $dir/uz $dir/c; mkdir $dir/uz" "unzip -q $work/big.packed -d $dir/uz" \
        -n packed --prepare "rm -rf $dir/uz $dir/c" "env WRAPKIT_CACHE_DIR=$dir/c $work/big.packed" >&2
      python3 - "$json/cold-$name.json" <<'EOF' | tee -a "$summary"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print("| command | median | mean ± σ | ratio to `unzip` |")
print("|---|---|---|---|")
for k in ("unzip", "packed"):
    x = r[k]
    print(f"| `{k}` | {x['median']*1e3:.0f} ms | {x['mean']*1e3:.0f} ± {x['stddev']*1e3:.0f} ms | {x['median']/r['unzip']['median']:.2f} |")
EOF
      out ""
      rm -rf "$dir/c"
      out "Where the packed cold start's time goes (\`WRAPKIT_DEBUG=1\`, one run on $name):"
      out ""
      out '```text'
      WRAPKIT_DEBUG=1 WRAPKIT_CACHE_DIR=$dir/c "$work/big.packed" 2>&1 >/dev/null |
        grep -v '] exec ' | sed -E "s#$work#…#g; s#[0-9a-f]{64}#<digest>#g" | tee -a "$summary"
      out '```'
      out ""
    done
    ;;
  esac
done
note "summary in $summary"
