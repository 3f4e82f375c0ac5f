#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks the C++ formatting, builds everything
# with clang's thread-safety analysis as errors, then builds with gcc and runs every test (C++
# and Python). Extra arguments go to `bazel test` (for example --config=asan).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
tools/check_format.sh
# The clang build has an output base of its own: switching the default one between compilers
# would re-run its toolchain configuration and drop its analysis cache every time.
clang_base="${SLUICE_CLANG_OUTPUT_BASE:-$(bazel info output_base 2>/dev/null)-clang}"
# The project's packages by name: `//...` would also walk the default output base's convenience
# symlinks (bazel-<workspace>), which this second output base does not know to skip.
packages=(//core/... //graph/... //runtime/... //ops/... //distributed/... //python/... //tests/...
          //bench/... //examples/... //tools/...)
echo "thread-safety: bazel build --config=clang (output base $clang_base)"
clang_status=0
bazel --output_base="$clang_base" build --disk_cache="$cache" --config=clang "${packages[@]}" ||
  clang_status=$?
bazel --output_base="$clang_base" shutdown
[ "$clang_status" -eq 0 ] || exit "$clang_status"
status=0
bazel test --disk_cache="$cache" "$@" //... 2>&1 | tee "$log" || status=$?
# One closing line that counts test targets, whatever the runner inside each.
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
echo "targets: ${passed} passed, ${failed} failed"
exit "$status"
