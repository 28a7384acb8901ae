#!/usr/bin/env bash
# The CPU code built with AddressSanitizer and UndefinedBehaviorSanitizer (no CUDA), and the whole CPU
# test suite run under them, the CLI test included. Any report fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-asan}
"$root/scripts/install_deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEN_SANITIZE=ON -DGEN_CUDA=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j "$(nproc)" "$@"
