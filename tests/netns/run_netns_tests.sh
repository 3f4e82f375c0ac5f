#!/usr/bin/env bash
# Runs the network-namespace fault tests (tests/netns) with Debian's interpreter, which has
# numpy and pytest. Needs root (network namespaces, iptables); skips, saying why, without it.
#
# Under Bazel (//tests/netns:netns_test, the short form; //tests/netns:netns_full_test, the
# full form) the module and sluice_server come from the runfiles. By hand, from the module
# tools/python_env.sh builds (sluice_server beside it):
#
#   eval "$(tools/python_env.sh)"
#   tests/netns/run_netns_tests.sh                # short form, about 4 minutes
#   tests/netns/run_netns_tests.sh --full         # full form: more repetitions, longer windows
#   tests/netns/run_netns_tests.sh -k partition   # other arguments go to pytest
#
# Logs of every server, proxy and client, and results.jsonl (what each scenario saw: error
# texts, timings), go to $TEST_UNDECLARED_OUTPUTS_DIR under Bazel (bazel-testlogs/tests/netns/
# <target>/test.outputs/outputs.zip), else $SLUICE_NETNS_OUT, else /tmp/sluice-netns-<pid>.
set -euo pipefail
if [ "${1:-}" = "--full" ]; then
  export SLUICE_NETNS_FULL=1
  shift
fi
if [ -n "${TEST_SRCDIR:-}" ]; then
  runfiles="$TEST_SRCDIR/${TEST_WORKSPACE:-sluice}"
  export PYTHONPATH="$runfiles/python"
  export SLUICE_SERVER_BINARY="$runfiles/distributed/sluice_server"
  dir="$runfiles/tests/netns"
  # A module built with --config=asan/tsan needs its sanitizer runtime loaded first (as in
  # python/run_pytest.sh); the clients inherit it.
  preload="$(ldd "$runfiles/python/_sluice_core.so" |
    awk '/lib(asan|tsan|ubsan)\.so/ {print $3}' | paste -sd: -)"
  if [ -n "$preload" ]; then
    export LD_PRELOAD="$preload"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
  fi
else
  dir="$(cd "$(dirname "$0")" && pwd)"
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -v -rA \
  --basetemp="${TEST_TMPDIR:-$(mktemp -d)}/pytest" "$dir" "$@"
