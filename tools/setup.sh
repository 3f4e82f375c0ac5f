#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice builds and tests with, if any is missing.
# Idempotent and quiet when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

packages=(
  bazel-bootstrap pkg-config g++ clang clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libtbb-dev libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev
  pybind11-dev python3-dev python3-numpy python3-pytest
  python3-protobuf python3-crcmod python3-matplotlib python3-absl  # sl.summary, sl.app.flags
  iproute2 iptables  # tests/netns: network namespaces, veth, bridge, fault rules
  libcpp-httplib-dev  # sluice_server --metrics_port (Prometheus text over HTTP)
  openssl  # sl.LocalCluster(tls=True): throwaway CA and certificates
  python3-yaml  # python/tests/test_deploy_manifests.py reads deploy/kubernetes
  libclang-rt-14-dev  # tools/fuzz.sh: clang's libFuzzer and sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
