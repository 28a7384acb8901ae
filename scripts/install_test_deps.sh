#!/usr/bin/env bash
# What the tests need beyond the build (scripts/test.sh calls it before ctest): the Python packages of
# gen serve's tests (scripts/install_py_deps.sh), and Debian's nginx (tests/replicas_test.sh), slurm-wlm
# and munge (tests/slurm_test.sh), installed when missing and this is root with apt-get. Installed here,
# once, because two tests that each ran apt-get at the same time under ctest -j would race for dpkg's
# lock; each test still installs what it lacks when it runs alone. Never runtime dependencies of gen.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_py_deps.sh"
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
for c in slurmctld slurmd sbatch; do command -v "$c" >/dev/null || { missing+=(slurm-wlm); break; }; done
command -v munged >/dev/null || [ -x /usr/sbin/munged ] || missing+=(munge)
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_test_deps: ${missing[*]} missing (not root with apt-get): their tests will say skipped" >&2
  exit 0
fi
echo "install_test_deps: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
