#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, a separate clang project in build-fuzz) and runs each for
# a bounded time on a copy of its seed corpus (tests/fuzz/corpus/<target>, left unmodified).
#   FUZZ_SECONDS  seconds per target (default 30)
#   FUZZ_JOBS     ninja parallelism (default 2)
#   FUZZ_TARGETS  space-separated subset of: safetensors config tokenizer prompts flags kv_file
#                 serve_request merge (default all)
#   FUZZ_SEED     libFuzzer -seed (default 1, so CI runs the same inputs each time)
#   BUILD_DIR     build folder (default build-fuzz)
# Exits non-zero when a target crashes (or times out, or runs out of memory), printing the path of
# the input that did it. Last line: "fuzz: N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-"safetensors config tokenizer prompts flags kv_file serve_request merge"}

die() { echo "fuzz: $*" >&2; echo "fuzz: 0 passed, $(wc -w <<<"$targets") failed"; exit 1; }

sudo_cmd() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

# ---- toolchain: clang with the libFuzzer runtime -------------------------------------------------
probe_libfuzzer() {
  local d; d=$(mktemp -d)
  printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$d/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$d/p.cpp" -o "$d/p" >/dev/null 2>&1
  local rc=$?; rm -rf "$d"; return $rc
}
if ! command -v clang++ >/dev/null || ! probe_libfuzzer; then
  echo "fuzz: installing clang and the libFuzzer runtime"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd apt-get update -qq || die "apt-get update failed"
  command -v clang++ >/dev/null || sudo_cmd apt-get install -y -qq clang || die "cannot install clang"
  major=$(clang++ -dumpversion | cut -d. -f1)
  # libclang_rt.fuzzer: libclang-rt-<N>-dev on Debian 12 / Ubuntu 22.04+, else libclang-common-<N>-dev.
  sudo_cmd apt-get install -y -qq "libclang-rt-$major-dev" ||
    sudo_cmd apt-get install -y -qq "libclang-common-$major-dev" || die "cannot install the libFuzzer runtime"
  probe_libfuzzer || die "clang++ -fsanitize=fuzzer still does not link"
fi
for pkg in cmake ninja pkg-config; do
  command -v "$pkg" >/dev/null || die "$pkg not found (scripts/install_deps.sh installs it)"
done

# ---- build ---------------------------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ || die "configure failed"
fi
ninja -C "$build" -j "$jobs" || die "build failed"

# ---- run -----------------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/gen-fuzz.XXXXXX")
echo "fuzz: working in $work (kept when a target fails)"
passed=0 failed=0
for t in $targets; do
  case $t in
    safetensors) max_len=4096 ;;
    config) max_len=4096 ;;
    tokenizer) max_len=2048 ;;
    prompts) max_len=4096 ;;
    flags) max_len=1024 ;;
    kv_file) max_len=8192 ;;
    serve_request) max_len=4096 ;;
    merge) max_len=4096 ;;
    *) echo "fuzz: unknown target '$t'"; failed=$((failed + 1)); continue ;;
  esac
  bin=$build/fuzz_$t
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  cp -R "$root/tests/fuzz/corpus/$t/." "$work/corpus/$t/"
  log=$work/$t.log
  echo "fuzz: $t for ${seconds}s (-max_len=$max_len)"
  (cd "$work" && "$bin" "$work/corpus/$t" -max_total_time="$seconds" -max_len="$max_len" \
     -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -seed="${FUZZ_SEED:-1}" \
     -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1)
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $t ok: ${runs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "fuzz: $t FAILED (exit $rc) after ${runs:-?} execs; log: $log"
    grep -E 'ERROR: |SUMMARY: |invariant broken|terminate called|what\(\)' "$log" | head -5 | sed 's/^/  /'
    crash=$(grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to //' | tail -1)
    if [ -n "$crash" ]; then
      echo "fuzz: $t crash input: $crash"
      echo "fuzz: reproduce: $bin $crash"
    else
      tail -20 "$log" | sed 's/^/  /'
    fi
  fi
done
[ "$failed" -eq 0 ] && rm -rf "$work"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
