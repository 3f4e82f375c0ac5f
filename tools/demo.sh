#!/usr/bin/env bash
# The main demo: installs what is missing, then builds and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
bazel run --disk_cache="$cache" //examples:distributed_demo -- "$@"
