#!/usr/bin/env bash
# scripts/plot_latency.py on a synthetic trace: a real PNG of sensible size, and one-line errors for
# a missing file, a wrong header, no rows, a bad row and a missing matplotlib. Without matplotlib
# the test says "skipped: " (ctest reports it as skipped).
set -u
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../scripts/plot_latency.py
# The first Python that has matplotlib: the one on PATH, else the system's (Debian's python3-matplotlib,
# which scripts/install_deps.sh installs, lives there when PATH has another Python first).
py=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import matplotlib" 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "skipped: matplotlib not installed"
  exit 0
fi
source "$here/cli_lib.sh"

# A prompt of 16 tokens, 200 decode steps: flat with the cache, growing without it.
{
  echo "mode,step,context,batch,step_ms"
  for mode in cache no-cache; do
    echo "$mode,0,16,1,9.5"
    for s in $(seq 1 200); do
      c=$((16 + s))
      if [ "$mode" = cache ]; then ms="6.$((s % 7))"; else ms=$((4 + c / 10)).$((s % 9)); fi
      echo "$mode,$s,$c,1,$ms"
    done
  done
} >"$tmp/steps.csv"
sed 's/,1,/,8,/' "$tmp/steps.csv" >"$tmp/batch8.csv"

# check_png FILE: the PNG signature, and an IHDR width and height a person can read.
check_png() {
  python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert data[12:16] == b"IHDR"
w, h = struct.unpack(">II", data[16:24])
assert 600 <= w <= 4000 and 400 <= h <= 3000, (w, h)
PY
}

# expect_error CODE PATTERN -- ARGS...: exit CODE, one line "error: ..." matching PATTERN, no PNG written.
expect_error() {
  local code=$1 pattern=$2
  shift 3
  rm -f "$tmp/err.png"
  "$py" "$script" "$@" -o "$tmp/err.png" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, expected $code: $(cat "$tmp/err")"; return; fi
  if [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q '^error: ' "$tmp/err"; then bad "$* -> not one error line: $(cat "$tmp/err")"; return; fi
  if ! grep -qE -- "$pattern" "$tmp/err"; then bad "$* -> '$(cat "$tmp/err")' does not match '$pattern'"; return; fi
  if [ -e "$tmp/err.png" ]; then bad "$* -> wrote a PNG anyway"; return; fi
  ok
}

# ---- pictures -------------------------------------------------------------------------------------
"$py" "$script" "$tmp/steps.csv" -o "$tmp/a.png" --title "test machine" 2>"$tmp/err" && check_png "$tmp/a.png" && ok ||
  bad "one file, both modes: $(cat "$tmp/err")"
"$py" "$script" "$tmp/steps.csv" "$tmp/batch8.csv" -o "$tmp/b.png" --log 2>"$tmp/err" && check_png "$tmp/b.png" && ok ||
  bad "two files, --log: $(cat "$tmp/err")"
grep -v '^no-cache' "$tmp/steps.csv" >"$tmp/cache_only.csv"
"$py" "$script" "$tmp/cache_only.csv" -o "$tmp/c.png" 2>"$tmp/err" && check_png "$tmp/c.png" && ok ||
  bad "one mode only: $(cat "$tmp/err")"

# ---- errors ---------------------------------------------------------------------------------------
expect_error 2 "cannot read $tmp/missing.csv" -- "$tmp/missing.csv"
expect_error 2 "cannot read $tmp/missing.csv" -- "$tmp/steps.csv" "$tmp/missing.csv"
printf 'mode,step,ctx,batch,ms\ncache,1,2,1,3.0\n' >"$tmp/header.csv"
expect_error 2 "header must be 'mode,step,context,batch,step_ms'" -- "$tmp/header.csv"
: >"$tmp/empty.csv"
expect_error 2 "header must be .*an empty file" -- "$tmp/empty.csv"
echo "mode,step,context,batch,step_ms" >"$tmp/norows.csv"
expect_error 2 "no rows after the header" -- "$tmp/norows.csv"
printf 'mode,step,context,batch,step_ms\ncached,1,2,1,3.0\n' >"$tmp/mode.csv"
expect_error 2 "mode must be cache or no-cache, got 'cached' \($tmp/mode.csv:2\)" -- "$tmp/mode.csv"
printf 'mode,step,context,batch,step_ms\ncache,1,2,1,fast\n' >"$tmp/num.csv"
expect_error 2 "step_ms a number" -- "$tmp/num.csv"
expect_error 2 "usage" --
# matplotlib missing: a stand-in package that fails to import, first on the path.
mkdir -p "$tmp/shim/matplotlib"
echo 'raise ImportError("no matplotlib here")' >"$tmp/shim/matplotlib/__init__.py"
PYTHONPATH=$tmp/shim expect_error 1 "^error: matplotlib is not installed \(pip install matplotlib\)$" -- "$tmp/steps.csv"

finish plot_latency
