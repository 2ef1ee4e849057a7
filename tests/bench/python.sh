#!/usr/bin/env bash
# Python app benchmarks (docs/python.md, "Costs"), side by side in one run, with Debian's
# python3.11:
#
#   warm   warm start of the packed app vs the same interpreter run directly from the cache tree
#          with the same isolation (its ._pth: target ratio <= 1.05), the bare host interpreter
#          (`python3.11 -I`), PyInstaller --onefile and --onedir
#   rss    peak RSS of the same (target: packed <= direct + 2 MiB)
#   cold   first start (empty cache, on this machine's disk) vs PyInstaller --onefile, which
#          extracts itself on every run (target: <= 0.5x)
#   size   the packed file vs PyInstaller --onefile --strip (target: <= 1.5x)
#
# Two apps: `hello` (prints one line) and `imports` (imports 50 stdlib modules). PyInstaller is
# installed from PyPI into a private venv (pinned below). Prints Markdown on stdout (also in
# tests/bench/out/python-summary.md); progress on stderr.
#
# Needs: hyperfine, python3.11 with venv and pip, GNU time (/usr/bin/time), the package index.
# usage: tests/bench/python.sh [--quick] [--no-build]

set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
pyinstaller_version=6.10.0

quick=0 build=1
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "python.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
for tool in hyperfine /usr/bin/python3.11 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "python.sh: error: $tool is missing" >&2; exit 1; }
done
note() { echo "==> $*" >&2; }
unset NODE_EXTRA_CA_CERTS PYTHONDONTWRITEBYTECODE PYTHONPATH PYTHONHOME
if [ $quick = 1 ]; then runs=60 cold_runs=3; else runs=300 cold_runs=10; fi

if [ $build = 1 ]; then
  note "cargo build --release"
  cargo build --release --quiet -p wrapkit
fi
wrapkit=${CARGO_TARGET_DIR:-$root/target}/release/wrapkit
mkdir -p tests/bench/out
work=$(mktemp -d "$root/tests/bench/out/python.XXXXXX")
trap 'rm -rf "$work"' EXIT
summary=$root/tests/bench/out/python-summary.md
: >"$summary"
out() { echo "$*" | tee -a "$summary"; }

note "PyInstaller $pyinstaller_version into a private venv"
/usr/bin/python3.11 -m venv "$work/pyi"
"$work/pyi/bin/pip" install -q --disable-pip-version-check "pyinstaller==$pyinstaller_version"

mkdir -p "$work/hello" "$work/imports"
echo 'print("hello")' >"$work/hello/main.py"
cat >"$work/imports/main.py" <<'EOF'
import argparse, base64, bisect, calendar, collections, configparser, contextlib, copy, csv
import dataclasses, datetime, decimal, difflib, email.message, enum, fnmatch, fractions
import functools, gettext, glob, hashlib, heapq, hmac, html, http.client, inspect, io
import ipaddress, itertools, json, logging, operator, os, pathlib, pickle, platform, pprint
import queue, random, re, shlex, shutil, socket, sqlite3, statistics, string, struct
import subprocess, tempfile, textwrap, threading, time, typing, urllib.parse, uuid, zipfile
print("imported", len([m for m in globals() if not m.startswith("_")]))
EOF

cache=$work/cache
export WRAPKIT_CACHE_DIR=$cache
for app in hello imports; do
  note "$app: pack"
  "$wrapkit" pack -q "$work/$app" --python /usr/bin/python3.11 -o "$work/$app.wk"
  "$work/$app.wk" >/dev/null
  for m in "$cache"/bundles-v1/*.ok; do
    t=${m%.ok}
    if cmp -s "$t/main.py" "$work/$app/main.py"; then echo "$t" >"$work/$app.tree"; fi
  done
  note "$app: PyInstaller --onefile --strip, --onedir"
  (cd "$work" && "$work/pyi/bin/pyinstaller" --log-level WARN --onefile --strip --name "$app-onefile" \
    --distpath "$work/dist" --workpath "$work/build-$app-1" --specpath "$work" "$work/$app/main.py")
  (cd "$work" && "$work/pyi/bin/pyinstaller" --log-level WARN --onedir --name "$app-onedir" \
    --distpath "$work/dist" --workpath "$work/build-$app-2" --specpath "$work" "$work/$app/main.py")
done

out "## Python apps ($(date -u +%F), python3.11 $(/usr/bin/python3.11 -c 'import sys; print(sys.version.split()[0])'), PyInstaller $pyinstaller_version)"
out ""
for app in hello imports; do
  tree=$(cat "$work/$app.tree")
  json=$work/$app-warm.json
  note "$app: warm"
  hyperfine -N -w 20 -r "$runs" --export-json "$json" \
    -n packed "$work/$app.wk" \
    -n direct "$tree/.python/bin/python3.11 $tree/main.py" \
    -n bare "/usr/bin/python3.11 -I $work/$app/main.py" \
    -n onefile "$work/dist/$app-onefile" \
    -n onedir "$work/dist/$app-onedir/$app-onedir" >/dev/null 2>&1
  out "### $app"
  out ""
  out "| | warm mean | vs direct | peak RSS (median of 5) |"
  out "|---|---|---|---|"
  /usr/bin/python3.11 - "$json" <<'EOF' >"$work/$app-warm.txt"
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
for name, mean in r.items():
    print(name, f"{mean * 1000:.2f}", f"{mean / r['direct']:.2f}")
EOF
  while read -r name mean ratio; do
    case $name in
      packed) cmd=("$work/$app.wk") ;;
      direct) cmd=("$tree/.python/bin/python3.11" "$tree/main.py") ;;
      bare) cmd=(/usr/bin/python3.11 -I "$work/$app/main.py") ;;
      onefile) cmd=("$work/dist/$app-onefile") ;;
      onedir) cmd=("$work/dist/$app-onedir/$app-onedir") ;;
    esac
    rss=$(for _ in 1 2 3 4 5; do /usr/bin/time -f %M "${cmd[@]}" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p)
    out "| $name | $mean ms | ${ratio}x | $rss KiB |"
  done <"$work/$app-warm.txt"
  out ""
  note "$app: cold"
  cold=$work/$app-cold.json
  hyperfine -N -w 1 -r "$cold_runs" --export-json "$cold" \
    --prepare "rm -rf $work/cold-cache" \
    -n packed "env WRAPKIT_CACHE_DIR=$work/cold-cache $work/$app.wk" \
    -n onefile "$work/dist/$app-onefile" >/dev/null 2>&1
  /usr/bin/python3.11 - "$cold" "$work/$app.wk" "$work/dist/$app-onefile" "$work/dist/$app-onedir" <<'EOF' | tee -a "$summary"
import json, os, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"first start: packed {r['packed'] * 1000:.0f} ms, PyInstaller onefile {r['onefile'] * 1000:.0f} ms"
      f" ({r['packed'] / r['onefile']:.2f}x; target <= 0.5x)")
size = os.path.getsize(sys.argv[2]); onefile = os.path.getsize(sys.argv[3])
onedir = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(sys.argv[4]) for f in fs)
print(f"\nsize: packed {size / 2**20:.1f} MiB, onefile --strip {onefile / 2**20:.1f} MiB"
      f" ({size / onefile:.2f}x; target <= 1.5x), onedir {onedir / 2**20:.1f} MiB\n")
EOF
done
