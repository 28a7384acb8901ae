#!/usr/bin/env bash
# Prints a short hash of the sources a build depends on: device_prepare.sh stores it in the bundle and
# device_check.sh compares it with the tree it runs in, to flag a stale bundle.
cd "$(dirname "$0")/.." && find CMakeLists.txt src include kernels tools tests -type f | LC_ALL=C sort | xargs sha256sum |
  sha256sum | cut -c1-16
