#!/usr/bin/env bash
# Renders deploy/kubernetes offline with `kubectl kustomize` (kubectl is not a Debian package:
# this check runs where it is installed) and checks the rendered objects: three StatefulSets,
# three headless Services, the generated ConfigMap, and every reference to it resolved. The
# manifests' agreement with sluice_server's flags is python/tests/test_deploy_manifests.py's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "check_deploy: kubectl is not installed" >&2; exit 2; }
rendered="$(kubectl kustomize deploy/kubernetes)"
/usr/bin/python3 - "$rendered" <<'PYTHON'
import sys
import yaml
docs = [d for d in yaml.safe_load_all(sys.argv[1]) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["ConfigMap", "Service", "Service", "Service", "StatefulSet", "StatefulSet",
                 "StatefulSet"], kinds
config = next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap")
for d in docs:
    if d["kind"] != "StatefulSet":
        continue
    env = d["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = [e["valueFrom"]["configMapKeyRef"]["name"] for e in env if "valueFrom" in e]
    assert refs == [config], (d["metadata"]["name"], refs)
print("deploy/kubernetes renders: %d objects" % len(docs))
PYTHON
