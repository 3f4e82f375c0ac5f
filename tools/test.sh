#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds everything and runs every test
# (C++ and Python). Extra arguments go to `bazel test` (for example --config=asan).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
bazel test --disk_cache="$cache" "$@" //... 2>&1 | tee "$log" || status=$?
# One closing line that counts test targets, whatever the runner inside each.
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
echo "targets: ${passed} passed, ${failed} failed"
exit "$status"
