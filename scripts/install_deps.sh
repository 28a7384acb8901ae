#!/usr/bin/env bash
# Installs gen's build and test dependencies from Debian's packages when any is missing.
# The CUDA Toolkit is not installed here: the build uses it when nvcc is found (GEN_CUDA=AUTO).
# python3-matplotlib is for scripts/plot_latency.py (and its test), never for gen itself.
# ocl-icd-opencl-dev: oneDNN's CMake config looks for OpenCL (only a Recommends of libdnnl-dev, so
# --no-install-recommends leaves it out). libxxhash-dev: the K/V files' checksum and the model hash.
# libcpp-httplib-dev: gen serve's HTTP layer.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config python3 libcli11-dev nlohmann-json3-dev catch2 libopenblas-dev libopenblas-openmp-dev libpcre2-dev libdnnl-dev ocl-icd-opencl-dev libxxhash-dev libcpp-httplib-dev python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install_deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
