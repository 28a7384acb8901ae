#!/usr/bin/env bash
# gen serve end to end (tests/serve/*.py, pytest + the official openai client): ctest runs this with
# GEN=path/to/gen MAKE_MODEL=path/to/gen-make-model. Prints "skipped: ..." and exits 0 only when python3
# cannot import pytest or openai (scripts/test.sh installs them); otherwise pytest's exit status.
# Extra arguments go to pytest (e.g. tests/serve_test.sh -k soak -s).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export GEN=${GEN:-$root/build/gen}
export MAKE_MODEL=${MAKE_MODEL:-$root/build/gen-make-model}
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 0; }
if ! missing=$(python3 -c 'import pytest, openai' 2>&1); then
  echo "skipped: python3 cannot import pytest and openai (python3 -m pip install pytest openai): ${missing##*$'\n'}"
  exit 0
fi
[ -x "$GEN" ] || { echo "FAIL: no gen binary at $GEN"; exit 1; }
[ -x "$MAKE_MODEL" ] || { echo "FAIL: no gen-make-model at $MAKE_MODEL"; exit 1; }
# No .pytest_cache or __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
tmo=()
command -v timeout >/dev/null && tmo=(timeout -k 10 "${SERVE_TEST_TIMEOUT:-1200}")
cd "$here/serve" && exec "${tmo[@]}" python3 -m pytest -q -p no:cacheprovider --rootdir "$here/serve" "$@"
