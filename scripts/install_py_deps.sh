#!/usr/bin/env bash
# Installs the Python packages gen serve's tests use, from PyPI when missing: the official `openai`
# client (the server's API is tested through it) and pytest. Never a runtime dependency of gen.
set -euo pipefail
python3 -c "import openai, pytest" 2>/dev/null && exit 0
echo "install_py_deps: installing openai and pytest from PyPI" >&2
python3 -m pip install -q openai pytest 2>/dev/null || python3 -m pip install -q --break-system-packages openai pytest
