#!/usr/bin/env bash
# wrapkit benchmarks: start-up, payload scaling, sizes, memory, large assets, compression.
#
# Builds the release binaries, packs generated apps, times them side by side with hyperfine
# and prints a Markdown summary (also written to tests/bench/out/summary.md). Every claim is
# a ratio against an anchor measured in the same run: absolute times on a shared VM drift.
# See docs/benchmarks.md for what each section measures and the figures of the last run.
#
# Needs: lua5.4 and hyperfine (Debian packages `lua5.4`, `hyperfine`), cargo, tar.
# Optional: GNU time at /usr/bin/time (else python3) for peak RSS; valgrind for the
# instruction counts (`callgrind`, `profile`).

set -euo pipefail

usage() {
  cat <<'EOF'
usage: tests/bench/run.sh [--quick] [--keep] [--no-build] [SECTION...]

Sections (default: all, which is every section but `profile`):
  startup      packed Lua hello vs `lua5.4 hello.lua` vs /bin/true          (target: ratio <= 1.00)
  manyfiles    start-up with a 100,000-file payload vs a 1-file payload     (target: ratio <= 1.10)
               plus pack time and sizes for the 100k tree
  size         size of the static stub (target: <= 2.5 MiB) and of the packed hello
  rss          peak RSS of packed hello vs `lua5.4 hello.lua`                (target: <= lua + 1 MiB)
  asset        100 MiB stored asset: peak RSS for none / read 1 MiB / read all
  compression  store vs deflate vs auto on a real text tree: size, pack time, read start-up
  callgrind    instruction counts (deterministic) of the start-up cases     (needs valgrind)
  profile      where packed hello's instructions go, with a symbolised stub (needs valgrind;
               builds a second, unstripped stub into tests/bench/out/stub-sym, ~1 min once)

Options:
  --quick      fewer rounds and runs (a smoke test; figures are noisier)
  --keep       keep the generated work directory (tests/bench/out/work.*)
  --no-build   do not run `cargo build --release` first
EOF
}

die() { echo "run.sh: error: $*" >&2; exit 1; }
note() { echo "==> $*" >&2; }

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
OUT=$BENCH_DIR/out
JSON=$OUT/json

QUICK=0 KEEP=0 BUILD=1
SECTIONS=()
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help) usage; exit 0 ;;
    all | startup | manyfiles | size | rss | asset | compression | callgrind | profile) SECTIONS+=("$a") ;;
    *) usage >&2; die "unknown argument: $a" ;;
  esac
done
[[ ${#SECTIONS[@]} -gt 0 ]] || SECTIONS=(all)
if [[ " ${SECTIONS[*]} " == *" all "* ]]; then
  extra=()
  [[ " ${SECTIONS[*]} " == *" profile "* ]] && extra=(profile)
  SECTIONS=(startup manyfiles size rss asset compression callgrind "${extra[@]}")
fi
want() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not found: $2"; }
need lua5.4 "install the Debian package lua5.4 (apt-get install lua5.4)"
need hyperfine "install the Debian package hyperfine (apt-get install hyperfine)"
need cargo "install a Rust toolchain (https://rustup.rs)"
need rustc "install a Rust toolchain (https://rustup.rs)"
need tar "install tar"
if want callgrind || want profile; then
  need valgrind "install the Debian package valgrind, or leave out the callgrind/profile sections"
fi
if want profile; then
  need callgrind_annotate "install the Debian package valgrind"
fi

# Measure the programs, not our environment.
unset NODE_EXTRA_CA_CERTS PYTHONDONTWRITEBYTECODE
export LC_ALL=C

if ((QUICK)); then
  ROUNDS=1 RUNS=30 WARM=5 RSS_N=3 PACK_RUNS=1 PACK_WARM=0
else
  ROUNDS=5 RUNS=500 WARM=20 RSS_N=11 PACK_RUNS=3 PACK_WARM=1
fi
MANY_DIRS=100 MANY_PER_DIR=1000
ASSET_MIB=100
READ_FILES=50

# --- build -------------------------------------------------------------------------------------

if ((BUILD)); then
  note "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
HOST=$(rustc -vV | sed -n 's/^host: //p')
WRAPKIT=$TARGET_DIR/release/wrapkit
STUB=$TARGET_DIR/stub/$HOST/stub/wrapkit-stub
[[ -x $WRAPKIT ]] || die "$WRAPKIT not found; run without --no-build"
[[ -f $STUB ]] || die "the stub $STUB was not built; run without --no-build"

mkdir -p "$OUT"
rm -rf "$JSON"
mkdir -p "$JSON"
W=$(mktemp -d "$OUT/work.XXXXXX")
cleanup() {
  if ((KEEP)); then note "kept the work directory $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------------------------

SECTION_MD=$W/sections.md
TARGETS_MD=$W/targets.md
: >"$SECTION_MD"
: >"$TARGETS_MD"
md() { printf '%s\n' "$@" >>"$SECTION_MD"; }
# target WHAT MEASURED GOAL VERDICT
target() { printf '| %s | %s | %s | **%s** |\n' "$1" "$2" "$3" "$4" >>"$TARGETS_MD"; }
stats() { lua5.4 "$BENCH_DIR/stats.lua" "$@"; }
calc() { lua5.4 -e "print(string.format('$1', $2))"; }
mib() { calc '%.2f' "$1 / 1048576"; }
size_of() { stat -c %s "$1"; }
# Bytes of a packed executable after its stub: the file size minus the archive start recorded
# in the trailer (the zip comment at the very end: "... start=<16 hex> ...").
payload_of() {
  local start
  start=$(tail -c 256 "$1" | grep -ao 'start=[0-9a-f]\{16\}' | tail -n 1 | cut -d= -f2 || true)
  [[ -n $start ]] || die "no trailer found at the end of $1"
  echo $(($(size_of "$1") - 16#$start))
}
# Quote a command line for `hyperfine -N`, which splits it shell-style without a shell.
qcmd() {
  local s="" a
  for a in "$@"; do s+="$(printf '%q' "$a") "; done
  printf '%s' "${s% }"
}
now() { printf '%s' "$EPOCHREALTIME"; }

# hf ID ROUNDS RUNS WARMUP NAME CMD [NAME CMD]...
# Runs hyperfine ROUNDS times, rotating the order of the commands each round so that drift
# on the machine does not always favour the same one; one JSON export per round.
hf() {
  local id=$1 rounds=$2 runs=$3 warm=$4
  shift 4
  local -a names=() cmds=()
  while (($#)); do names+=("$1"); cmds+=("$2"); shift 2; done
  local n=${#names[@]} r i k
  for ((r = 0; r < rounds; r++)); do
    local -a args=()
    for ((i = 0; i < n; i++)); do
      k=$(((i + r) % n))
      args+=(--command-name "${names[k]}" "${cmds[k]}")
    done
    note "hyperfine $id (round $((r + 1))/$rounds)"
    hyperfine -N --style basic --warmup "$warm" --runs "$runs" \
      --export-json "$JSON/$id.r$r.json" "${args[@]}" >&2 ||
      die "hyperfine failed for $id (a command exited non-zero?)"
  done
}
hf_table() {
  md "| command | median ms | mean ± σ ms | min ms | max ms | runs |" \
    "|---|---:|---:|---:|---:|---:|"
  stats rows "$JSON/$1" >>"$SECTION_MD"
}

# Peak RSS: GNU time if it works, else python3's getrusage(RUSAGE_CHILDREN).
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%M' -o /dev/stdout true 2>/dev/null | grep -Eq '^[0-9]+$'; then
  RSS_TOOL="GNU time (/usr/bin/time -f '%M %R')"
  RSS_FLOOR=0
  rss_sample() { # prints "maxrss_KiB minor_faults"
    /usr/bin/time -f '%M %R' -o "$W/rss.tmp" "$@" >/dev/null 2>&1 || die "failed: $*"
    tail -n 1 "$W/rss.tmp"
  }
elif command -v python3 >/dev/null 2>&1; then
  # ru_maxrss also spans the forked python before its execve, so this reads at least python's
  # own RSS (about 14 MiB): good for big differences only. The /bin/true row shows the floor.
  RSS_TOOL="python3 resource.getrusage(RUSAGE_CHILDREN) (floor: python's own RSS, see /bin/true)"
  RSS_FLOOR=1
  rss_sample() {
    python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if r.returncode:
    sys.exit("failed: " + " ".join(sys.argv[1:]))
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(u.ru_maxrss, u.ru_minflt)' "$@" || die "failed: $*"
  }
else
  RSS_TOOL="" RSS_FLOOR=0
  rss_sample() { die "peak RSS needs GNU time at /usr/bin/time (Debian package time) or python3"; }
fi
# rss N CMD... -> sets RSS_MED (KiB), FLT_MED (minor faults), RSS_ALL (samples)
rss() {
  local n=$1 i m f
  shift
  local -a ms=() fs=()
  local sample
  for ((i = 0; i < n; i++)); do
    sample=$(rss_sample "$@")
    read -r m f <<<"$sample"
    ms+=("$m")
    fs+=("$f")
  done
  RSS_MED=$(stats median "${ms[@]}")
  FLT_MED=$(stats median "${fs[@]}")
  RSS_ALL="${ms[*]}"
}

# Instruction count of one run (callgrind's "Collected" total).
irefs() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : *//p'
}

# --- shared fixtures ---------------------------------------------------------------------------

prep_hello() {
  [[ -e $W/hello ]] && return
  "$WRAPKIT" pack "$ROOT/examples/hello" -o "$W/hello" -q
  # The lua5.4 baseline: the same line as examples/hello/main.lua, without require("wrapkit").
  cat >"$W/hello.lua" <<'EOF'
local who = arg[1] or "world"
print(("Hello, %s! (from %s, Lua %s)"):format(who, "hello", _VERSION:match("%d+%.%d+")))
EOF
  local a b
  a=$("$W/hello")
  b=$(lua5.4 "$W/hello.lua")
  [[ $a == "$b" ]] || die "packed hello printed '$a' but the baseline printed '$b'"
}

# Tiny main.lua shared by the 1-file and the 100k-file apps: optionally reads one archive file.
TINY_MAIN='local p = arg[1]
if p then assert(require("wrapkit").read(p)) end
print("ok")'

prep_many() {
  [[ -d $W/many ]] && return
  note "generating $((MANY_DIRS * MANY_PER_DIR)) files under $W/many"
  mkdir -p "$W/one"
  printf '%s\n' "$TINY_MAIN" >"$W/one/main.lua"
  # 100 dirs x 10 subdirs x 100 files of 12-110 bytes each.
  lua5.4 - "$W/many" "$MANY_DIRS" "$MANY_PER_DIR" <<'EOF'
local root, ndirs, per = arg[1], tonumber(arg[2]), tonumber(arg[3])
local subs = 10
local dirs = {}
for d = 0, ndirs - 1 do
  for s = 0, subs - 1 do dirs[#dirs + 1] = ("'%s/d%02d/s%d'"):format(root, d, s) end
end
for i = 1, #dirs, 200 do
  assert(os.execute("mkdir -p " .. table.concat(dirs, " ", i, math.min(i + 199, #dirs))))
end
for d = 0, ndirs - 1 do
  for i = 0, per - 1 do
    local name = ("%s/d%02d/s%d/f%03d.txt"):format(root, d, i % subs, i // subs)
    local f = assert(io.open(name, "wb"))
    f:write(("file %d/%d: %s\n"):format(d, i, ("x"):rep((d * per + i) % 97)))
    f:close()
  end
end
EOF
  cp "$W/one/main.lua" "$W/many/main.lua"
  "$WRAPKIT" pack "$W/one" -o "$W/one.bin" -q
  "$WRAPKIT" pack "$W/many" -o "$W/many.bin" -q
  [[ $("$W/many.bin" d50/s5/f050.txt) == ok ]] || die "the 100k-file app did not run"
}

# Same script for the packed app and for lua5.4 reading the real file beside it.
ASSET_MAIN='local ok, wk = pcall(require, "wrapkit")
local path = ok and wk.path("asset.bin") or ((arg[0]:match("^(.*)/") or ".") .. "/asset.bin")
local mode = arg[1] or "none"
if mode ~= "none" then
  local f = assert(io.open(path, "rb"))
  if mode == "touch1m" then
    assert(#f:read(1 << 20) == 1 << 20)
  elseif mode == "all" then
    local n = 0
    while true do
      local s = f:read(1 << 20)
      if s == nil then break end
      n = n + #s
    end
    assert(n == f:seek("end"))
  else
    error("unknown mode " .. mode)
  end
  f:close()
end
if arg[2] == "status" then
  for line in io.lines("/proc/self/status") do
    if line:match("^VmHWM") or line:match("^RssAnon") or line:match("^RssFile") then print(line) end
  end
end'

# --- 1. start-up -------------------------------------------------------------------------------

if want startup; then
  prep_hello
  hf startup "$ROUNDS" "$RUNS" "$WARM" \
    "packed hello" "$(qcmd "$W/hello")" \
    "lua5.4 hello.lua" "$(qcmd lua5.4 "$W/hello.lua")" \
    "/bin/true" "/bin/true"
  read -r r lo hi < <(stats ratio "$JSON/startup" "packed hello" "lua5.4 hello.lua")
  t_p=$(stats median-ms "$JSON/startup" "packed hello")
  t_l=$(stats median-ms "$JSON/startup" "lua5.4 hello.lua")
  t_t=$(stats median-ms "$JSON/startup" "/bin/true")
  net=$(calc '%.3f' "($t_p - $t_t) / ($t_l - $t_t)")
  v=$(stats le "$r" 1.0)
  target "start-up: packed hello / lua5.4 hello.lua" "$r (rounds $lo–$hi)" "≤ 1.00" "$v"
  md "## 1. Start-up: packed Lua hello vs lua5.4 vs /bin/true" "" \
    "hyperfine -N (no shell), $WARM warm-up runs, $ROUNDS round(s) × $RUNS runs per command, command order rotated each round; times pooled over rounds." ""
  hf_table startup
  md "" "- ratio packed / lua5.4 (medians): **$r** (per-round $lo–$hi); target ≤ 1.00: **$v**" \
    "- above process creation (minus /bin/true): packed / lua5.4 = $net" ""
fi

# --- 2. many files -----------------------------------------------------------------------------

if want manyfiles; then
  prep_many
  nfiles=$(find "$W/many" -type f | wc -l)
  in_bytes=$(find "$W/many" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
  hf manyfiles "$ROUNDS" "$RUNS" "$WARM" \
    "1-file payload" "$(qcmd "$W/one.bin")" \
    "100k-file payload" "$(qcmd "$W/many.bin")" \
    "100k-file payload, read 1 file" "$(qcmd "$W/many.bin" d50/s5/f050.txt)"
  read -r r lo hi < <(stats ratio "$JSON/manyfiles" "100k-file payload" "1-file payload")
  read -r r1 _ _ < <(stats ratio "$JSON/manyfiles" "100k-file payload, read 1 file" "1-file payload")
  v=$(stats le "$r" 1.10)
  target "start-up: 100k-file payload / 1-file payload" "$r (rounds $lo–$hi)" "≤ 1.10" "$v"

  hf packmany 1 "$PACK_RUNS" "$PACK_WARM" \
    "pack 1 file (auto)" "$(qcmd "$WRAPKIT" pack "$W/one" -o "$W/one.bin" -q)" \
    "pack 100k files (auto)" "$(qcmd "$WRAPKIT" pack "$W/many" -o "$W/many.bin" -q)" \
    "pack 100k files (store)" "$(qcmd "$WRAPKIT" pack "$W/many" -o "$W/many-store.bin" -q --compression store)"
  t_pack=$(stats median-ms "$JSON/packmany" "pack 100k files (auto)")
  md "## 2. Start-up with a 100,000-file payload" "" \
    "Same tiny main.lua (prints ok) in both; the big payload adds $nfiles files ($MANY_DIRS dirs × 10 subdirs × $((MANY_PER_DIR / 10)) files, $in_bytes bytes of content). The third row also looks up and reads one file in the middle of the index." ""
  hf_table manyfiles
  md "" "- ratio 100k / 1-file (medians): **$r** (per-round $lo–$hi); target ≤ 1.10: **$v**" \
    "- ratio 100k + read one file / 1-file: $r1" "" \
    "Packing ($PACK_RUNS run(s) each after $PACK_WARM warm-up, files in page cache, $(nproc) cores):" ""
  hf_table packmany
  md "" "| payload | executable bytes | payload bytes | payload MiB |" "|---|---:|---:|---:|"
  for f in one.bin many.bin many-store.bin; do
    s=$(size_of "$W/$f")
    p=$(payload_of "$W/$f")
    md "| $f | $s | $p | $(mib "$p") |"
  done
  md "" "- pack throughput (auto): $(calc '%.0f' "$nfiles / ($t_pack / 1000)") files/s" ""
fi

# --- 3. sizes ----------------------------------------------------------------------------------

if want size; then
  prep_hello
  stub_bytes=$(size_of "$STUB")
  hello_bytes=$(size_of "$W/hello")
  hello_payload=$(payload_of "$W/hello")
  embedded=$((hello_bytes - hello_payload))
  limit=$((5 * 1024 * 1024 / 2))
  v=$(stats le "$stub_bytes" "$limit")
  target "stub size (stripped, static)" "$stub_bytes B = $(mib "$stub_bytes") MiB" "≤ 2.5 MiB ($limit B)" "$v"
  linkage="unknown (readelf not found)"
  if command -v readelf >/dev/null 2>&1; then
    if readelf -lW "$STUB" | grep -q 'INTERP'; then linkage="dynamic (has PT_INTERP)"; else linkage="static (no PT_INTERP)"; fi
  fi
  md "## 3. Sizes" "" "| file | bytes | MiB |" "|---|---:|---:|" \
    "| stub \`${STUB#"$ROOT"/}\` | $stub_bytes | $(mib "$stub_bytes") |" \
    "| packed examples/hello | $hello_bytes | $(mib "$hello_bytes") |" \
    "| packed hello's payload (zip + index + manifest + trailer) | $hello_payload | |" "" \
    "- stub linkage: $linkage; target ≤ 2.5 MiB: **$v**"
  if ((embedded != stub_bytes)); then
    md "- note: the stub inside the packed hello is $embedded bytes, not $stub_bytes: \`wrapkit\` embeds a stub from an older build (run without --no-build)"
  fi
  md ""
fi

# --- 4. peak RSS -------------------------------------------------------------------------------

if want rss; then
  prep_hello
  rss "$RSS_N" "$W/hello"
  p_rss=$RSS_MED p_flt=$FLT_MED p_all=$RSS_ALL
  rss "$RSS_N" lua5.4 "$W/hello.lua"
  l_rss=$RSS_MED l_flt=$FLT_MED l_all=$RSS_ALL
  rss "$RSS_N" /bin/true
  t_rss=$RSS_MED t_flt=$FLT_MED
  d=$(calc '%.0f' "$p_rss - $l_rss")
  v=$(stats le "$p_rss" $((l_rss + 1024)))
  if ((RSS_FLOOR)); then v="n/a (python fallback: its floor hides the difference; install GNU time)"; fi
  target "peak RSS: packed hello − lua5.4 hello.lua" "$d KiB ($p_rss vs $l_rss KiB)" "≤ +1024 KiB" "$v"
  md "## 4. Peak RSS" "" "Median of $RSS_N runs each, measured with $RSS_TOOL." "" \
    "| command | peak RSS KiB (median) | minor faults (median) | samples KiB |" "|---|---:|---:|---|" \
    "| packed hello | $p_rss | $p_flt | $p_all |" \
    "| lua5.4 hello.lua | $l_rss | $l_flt | $l_all |" \
    "| /bin/true | $t_rss | $t_flt | |" "" \
    "- packed − lua5.4: **$d KiB**; target ≤ +1024 KiB: **$v**" ""
fi

# --- 5. large stored asset ---------------------------------------------------------------------

if want asset; then
  note "generating a $ASSET_MIB MiB random asset"
  mkdir -p "$W/asset"
  head -c $((ASSET_MIB << 20)) /dev/urandom >"$W/asset/asset.bin"
  printf '%s\n' "$ASSET_MAIN" >"$W/asset/main.lua"
  t0=$(now)
  "$WRAPKIT" pack "$W/asset" -o "$W/asset.bin" -q --compression store
  t1=$(now)
  pack_s=$(calc '%.2f' "$t1 - $t0")
  "$W/asset.bin" all || die "the asset app failed"
  md "## 5. A ${ASSET_MIB} MiB stored asset" "" \
    "Packed with \`--compression store\` in $pack_s s (one run) into $(size_of "$W/asset.bin") bytes. main.lua given \`none\` does nothing; \`touch1m\` opens the asset with \`io.open(wrapkit.path(\"asset.bin\"), \"rb\")\` and reads 1 MiB; \`all\` reads it all in 1 MiB chunks. The same script run by lua5.4 reads the real file beside it. Peak RSS is the median of $RSS_N runs; RssFile/RssAnon are read from /proc/self/status at exit (one run)." "" \
    "| mode | packed peak RSS KiB | Δ vs none | packed RssFile KiB | packed RssAnon KiB | lua5.4 real file peak RSS KiB | Δ vs none |" \
    "|---|---:|---:|---:|---:|---:|---:|"
  base_p="" base_l=""
  for mode in none touch1m all; do
    rss "$RSS_N" "$W/asset.bin" "$mode"
    pr=$RSS_MED
    rss "$RSS_N" lua5.4 "$W/asset/main.lua" "$mode"
    lr=$RSS_MED
    [[ -n $base_p ]] || base_p=$pr base_l=$lr
    st=$("$W/asset.bin" "$mode" status)
    rf=$(awk '/^RssFile/ {print $2}' <<<"$st")
    ra=$(awk '/^RssAnon/ {print $2}' <<<"$st")
    md "| $mode | $pr | +$((pr - base_p)) | $rf | $ra | $lr | +$((lr - base_l)) |"
  done
  hf asset "$ROUNDS" $((RUNS / 10)) 3 \
    "packed: read all" "$(qcmd "$W/asset.bin" all)" \
    "lua5.4 real file: read all" "$(qcmd lua5.4 "$W/asset/main.lua" all)"
  read -r r lo hi < <(stats ratio "$JSON/asset" "packed: read all" "lua5.4 real file: read all")
  md "" "Reading all ${ASSET_MIB} MiB, packed (zero-copy stream from the mapping) vs lua5.4 (read(2) from the page cache):" ""
  hf_table asset
  md "" "- ratio packed / lua5.4 for reading it all: $r (per-round $lo–$hi)" ""
fi

# --- 6. compression ----------------------------------------------------------------------------

if want compression; then
  src="" pattern=""
  for cand in /usr/share/lua/5.4 /usr/share/lua $(ls -d /usr/lib/python3.* 2>/dev/null | sort -rV); do
    [[ -d $cand ]] || continue
    case $cand in */lua*) pattern='*.lua' ;; *) pattern='*.py' ;; esac
    n=$(find "$cand" -type f -name "$pattern" -not -path '*-packages/*' | wc -l)
    if ((n >= 200)); then src=$cand; break; fi
  done
  [[ -n $src ]] || die "no text tree with 200+ files found (looked for /usr/share/lua, /usr/lib/python3.*)"
  note "copying $pattern files from $src"
  mkdir -p "$W/tree"
  (cd "$src" && find . -type f -name "$pattern" -not -path '*-packages/*' -print0 | tar --null -T - -cf -) |
    tar -C "$W/tree" -xf -
  # (names with quotes or backslashes are left out of the sample: they go into a Lua string)
  mapfile -t files < <(cd "$W/tree" && find . -type f -name "$pattern" | sed 's|^\./||' | grep -v '["\\]' | sort)
  nf=${#files[@]}
  step=$((nf / READ_FILES))
  {
    echo '-- Reads a fixed sample of the tree: from the archive when packed, else from disk.'
    echo 'local files = {'
    for ((i = 0; i < READ_FILES; i++)); do printf '  "%s",\n' "${files[i * step]}"; done
    echo '}'
    cat <<'EOF'
local ok, wk = pcall(require, "wrapkit")
local read = ok and wk.read or function(p)
  local f = assert(io.open(((arg[0]:match("^(.*)/") or ".") .. "/" .. p), "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local n = 0
for _, p in ipairs(files) do n = n + #assert(read(p)) end
print(#files, n)
EOF
  } >"$W/tree/main.lua"
  in_bytes=$(find "$W/tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
  read_bytes=$(lua5.4 "$W/tree/main.lua" | awk '{print $2}')
  hf packtree "$ROUNDS" "$PACK_RUNS" "$PACK_WARM" \
    "pack store" "$(qcmd "$WRAPKIT" pack "$W/tree" -o "$W/tree-store.bin" -q --compression store)" \
    "pack deflate" "$(qcmd "$WRAPKIT" pack "$W/tree" -o "$W/tree-deflate.bin" -q --compression deflate)" \
    "pack auto" "$(qcmd "$WRAPKIT" pack "$W/tree" -o "$W/tree-auto.bin" -q --compression auto)"
  for c in store deflate auto; do
    [[ $("$W/tree-$c.bin") == "$(lua5.4 "$W/tree/main.lua")" ]] || die "tree-$c.bin read different bytes"
  done
  hf readtree "$ROUNDS" $((RUNS / 2)) "$WARM" \
    "store: read $READ_FILES files" "$(qcmd "$W/tree-store.bin")" \
    "deflate: read $READ_FILES files" "$(qcmd "$W/tree-deflate.bin")" \
    "auto: read $READ_FILES files" "$(qcmd "$W/tree-auto.bin")" \
    "lua5.4 from disk: read $READ_FILES files" "$(qcmd lua5.4 "$W/tree/main.lua")"
  md "## 6. Compression: store vs deflate vs auto" "" \
    "Tree: the $nf \`$pattern\` files of \`$src\` plus main.lua, $in_bytes bytes. The app reads $READ_FILES of them ($read_bytes bytes, every ${step}th in sorted order) with \`wrapkit.read\` and prints the total." "" \
    "| setting | payload bytes | payload / input | pack time ms (median of $ROUNDS × $PACK_RUNS) |" "|---|---:|---:|---:|"
  for c in store deflate auto; do
    s=$(payload_of "$W/tree-$c.bin")
    md "| $c | $s | $(calc '%.3f' "$s / $in_bytes") | $(calc '%.1f' "$(stats median-ms "$JSON/packtree" "pack $c")") |"
  done
  if command -v unzip >/dev/null 2>&1; then
    # File entries only: directories are stored zip entries too, and .wrapkit/ is always stored.
    stored=$(unzip -v "$W/tree-auto.bin" 2>/dev/null |
      awk '$2 == "Stored" && $NF !~ /\/$/ && $NF !~ /^\.wrapkit\// {n++} END {print n + 0}')
    md "" "- auto stored $stored of $((nf + 1)) files (those that deflate would not shrink by 10 %) and deflated the rest."
  fi
  md "" "Start-up + reading $READ_FILES files:" ""
  hf_table readtree
  read -r rd lo hi < <(stats ratio "$JSON/readtree" "deflate: read $READ_FILES files" "store: read $READ_FILES files")
  read -r ra _ _ < <(stats ratio "$JSON/readtree" "auto: read $READ_FILES files" "store: read $READ_FILES files")
  read -r rl _ _ < <(stats ratio "$JSON/readtree" "store: read $READ_FILES files" "lua5.4 from disk: read $READ_FILES files")
  md "" "- deflate / store: $rd (per-round $lo–$hi); auto / store: $ra; store / lua5.4-from-disk: $rl" ""
fi

# --- 7. instruction counts ---------------------------------------------------------------------

if want callgrind; then
  prep_hello
  prep_many
  note "callgrind instruction counts"
  ir_p=$(irefs "$W/hello")
  ir_l=$(irefs lua5.4 "$W/hello.lua")
  ir_t=$(irefs /bin/true)
  ir_1=$(irefs "$W/one.bin")
  ir_m=$(irefs "$W/many.bin")
  ir_mr=$(irefs "$W/many.bin" d50/s5/f050.txt)
  if command -v strace >/dev/null 2>&1; then
    sys_p=$(strace -f -c -o "$W/strace.txt" "$W/hello" >/dev/null && awk '$NF == "total" {print $4}' "$W/strace.txt")
    sys_l=$(strace -f -c -o "$W/strace.txt" lua5.4 "$W/hello.lua" >/dev/null && awk '$NF == "total" {print $4}' "$W/strace.txt")
  else
    sys_p="n/a (no strace)" sys_l="n/a"
  fi
  md "## 7. Instruction counts (valgrind --tool=callgrind)" "" \
    "Deterministic: instructions executed in user space, dynamic loading included, kernel work (exec, page faults, syscalls) excluded." "" \
    "| program | instructions |" "|---|---:|" \
    "| packed hello | $ir_p |" "| lua5.4 hello.lua | $ir_l |" "| /bin/true | $ir_t |" \
    "| 1-file payload | $ir_1 |" "| 100k-file payload | $ir_m |" "| 100k-file payload, read 1 file | $ir_mr |"
  for c in store deflate; do
    if [[ -e $W/tree-$c.bin ]]; then
      md "| $c: read $READ_FILES files | $(irefs "$W/tree-$c.bin") |"
    fi
  done
  md "" "- packed hello / lua5.4 hello.lua: $(calc '%.3f' "$ir_p / $ir_l") (system calls, strace -c: $sys_p vs $sys_l)" \
    "- 100k-file / 1-file payload: $(calc '%.4f' "$ir_m / $ir_1"); 100k + read 1 file / 1-file: $(calc '%.4f' "$ir_mr / $ir_1")" ""
fi

# --- profile: where packed hello's instructions go ---------------------------------------------

if want profile; then
  prep_hello
  symdir=$OUT/stub-sym
  note "building an unstripped stub into $symdir (same profile and flags, symbols kept)"
  (cd "$ROOT" && CARGO_ENCODED_RUSTFLAGS=-Ctarget-feature=+crt-static cargo build --quiet \
    --bin wrapkit-stub --profile stub --manifest-path runtime/Cargo.toml --target "$HOST" \
    --target-dir "$symdir" --config profile.stub.strip=false \
    --config 'profile.stub.debug="line-tables-only"') || die "building the symbolised stub failed"
  "$WRAPKIT" pack "$ROOT/examples/hello" -o "$W/hello-sym" -q --runtime "$symdir/$HOST/stub/wrapkit-stub"
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.packed" "$W/hello-sym" >/dev/null 2>&1
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.lua" lua5.4 "$W/hello.lua" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$W/cg.packed" >"$OUT/profile-packed-inclusive.txt" 2>/dev/null
  callgrind_annotate "$W/cg.packed" >"$OUT/profile-packed-self.txt" 2>/dev/null
  callgrind_annotate --threshold=100 "$W/cg.lua" >"$OUT/profile-lua-self.txt" 2>/dev/null
  total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/profile-packed-inclusive.txt")
  md "## Profile: packed hello (symbolised stub), inclusive instructions" "" \
    "Total $total instructions. Full listings: tests/bench/out/profile-*.txt." "" \
    "| part | function | instructions | share |" "|---|---|---:|---:|"
  while IFS='|' read -r label fn; do
    n=$(grep -F ":$fn [" "$OUT/profile-packed-inclusive.txt" | head -n 1 | awk '{gsub(",", "", $1); print $1}' || true)
    [[ -n $n ]] || n=0
    md "| $label | \`$fn\` | $n | $(calc '%.1f %%' "100 * $n / $total") |"
  done <<'EOF'
runtime main (everything after libc start-up)|wrapkit_stub::main
open the Lua standard libraries|luaL_requiref
load the prelude (bytecode precompiled by build.rs, else source)|mlua::chunk::Chunk::into_function
Lua bytecode loader (the prelude, when precompiled)|luaU_undump
Lua parser (main.lua, and the prelude if not precompiled)|luaY_parser
read main.lua from the archive (inflate + CRC)|wrapkit_runtime::archive::Archive::contents
close the Lua state at exit (lua_close, via Drop)|core::ptr::drop_in_place<mlua::state::Lua>
static-PIE self-relocation|_dl_relocate_static_pie
glibc tunables|__tunables_init
sscanf (std reads /proc/self/maps for the main thread's stack guard)|__isoc99_sscanf
EOF
  ld=$(awk '/ld-linux/ {gsub(",", "", $1); s += $1} END {print s + 0}' "$OUT/profile-lua-self.txt")
  ltot=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/profile-lua-self.txt")
  md "" "- lua5.4 hello.lua: $ltot instructions, of which $ld ($(calc '%.0f %%' "100 * $ld / $ltot")) in ld-linux (dynamic loading and symbol relocation, which the static stub does not do)." ""
fi

# --- summary -----------------------------------------------------------------------------------

{
  echo "# wrapkit benchmark results"
  echo
  if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD -- . ':!tests/bench' ':!docs' 2>/dev/null ||
      rev+=" + uncommitted changes"
  else
    rev="(not a git checkout)"
  fi
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); wrapkit $rev"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- tools: $(lua5.4 -v 2>&1 | awk '{print $1, $2}'), $(hyperfine --version), $(rustc --version | awk '{print $1, $2}')"
  echo "- sections: ${SECTIONS[*]}$( ((QUICK)) && echo ' (--quick)')"
  echo
  if [[ -s $TARGETS_MD ]]; then
    echo "## Targets"
    echo
    echo "| target | measured | goal | verdict |"
    echo "|---|---|---|---|"
    cat "$TARGETS_MD"
    echo
  fi
  cat "$SECTION_MD"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
note "summary written to ${OUT#"$ROOT"/}/summary.md; hyperfine JSON in ${JSON#"$ROOT"/}/"
