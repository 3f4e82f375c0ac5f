#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds everything and runs every test.
# Extra arguments go to `bazel test` (for example --config=asan).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
bazel test --disk_cache="$cache" "$@" //...
