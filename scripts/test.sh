#!/usr/bin/env bash
# Builds gen and runs the whole test suite (what .ci/run calls). Tests that need a GPU, or the GPT-2
# tokenizer files (../shared/gpt2-tokenizer or models/gpt2), skip with a message when those are absent.
# Extra arguments go to ctest, e.g. scripts/test.sh -L cpu -R tokenizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
"$root/scripts/install_test_deps.sh"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
