#!/usr/bin/env bash
# Runs the Python test suite (python/tests) with Debian's interpreter, which has numpy and
# pytest, against the extension module Bazel built. Used by //python:python_test.
set -euo pipefail
runfiles="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-sluice}"
export PYTHONPATH="$runfiles/python"
export SLUICE_SERVER_BINARY="$runfiles/distributed/sluice_server"  # For sl.LocalCluster.
export PYTHONDONTWRITEBYTECODE=1
# A module built with --config=asan/tsan needs its sanitizer runtime loaded first; Python's own
# allocations would then be reported as leaks, so leak checking is off here.
preload="$(ldd "$runfiles/python/_sluice_core.so" | awk '/lib(asan|tsan|ubsan)\.so/ {print $3}' |
  paste -sd: -)"
if [ -n "$preload" ]; then
  export LD_PRELOAD="$preload"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
fi
cd "$runfiles"
exec /usr/bin/python3 -m pytest -p no:cacheprovider -v -ra \
  --basetemp="${TEST_TMPDIR:-$(mktemp -d)}/pytest" python/tests "$@"
