#!/usr/bin/env bash
# Builds the Python extension module and prints the PYTHONPATH that makes `import sluice` work
# with Debian's interpreter (which has numpy and pytest; the python3 first on PATH may not):
#
#   eval "$(tools/python_env.sh)"
#   /usr/bin/python3 -c "import sluice as sl; print(sl.float32)"
#
# The module is copied to build/python/_sluice_core.so, with the sluice_server binary that
# sl.LocalCluster starts beside it, so later Bazel builds with other configurations
# (--config=asan, ...) do not swap them underneath. Build output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >&2
cache="${SLUICE_BAZEL_DISK_CACHE:-$HOME/.cache/sluice-bazel-disk}"
bazel build --disk_cache="$cache" //python:_sluice_core.so //distributed:sluice_server >&2
mkdir -p build/python
bin="$(bazel info bazel-bin 2>/dev/null)"
install -m 0755 "$bin/python/_sluice_core.so" "$bin/distributed/sluice_server" build/python/
root="$(pwd)"
echo "export PYTHONPATH=\"$root/python:$root/build/python\${PYTHONPATH:+:\$PYTHONPATH}\""
