"""deploy/kubernetes matches the code: each StatefulSet's replicas equal its job's tasks in the
cluster spec (which parses), every sluice_server flag the pods pass exists (asked of the
binary), secrets are mounted owner-only (sluice_server refuses others-readable keys and
tokens), every task has a readiness probe on its control port, and the headless Services name
the pods the spec lists. Rendering with `kubectl kustomize` is tools/check_deploy.sh's (kubectl
is no Debian package)."""

import os
import re
import subprocess

import pytest

import sluice as sl
from sluice import distributed

yaml = pytest.importorskip("yaml")
ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kubernetes")


def load(name):
    with open(os.path.join(ROOT, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def test_manifests_match_the_cluster_spec_and_the_servers_flags():
    kustomization = load("kustomization.yaml")[0]
    literal = kustomization["configMapGenerator"][0]["literals"][0]
    spec = sl.train.ClusterSpec(literal.split("=", 1)[1])
    sets = {}
    for name in kustomization["resources"]:
        for doc in load(name):
            if doc["kind"] == "StatefulSet":
                sets[doc["spec"]["serviceName"]] = doc
    assert set(sets) == {"sluice-master", "sluice-worker", "sluice-ps"}
    helpfull = subprocess.run([distributed.find_server_binary(None), "--helpfull"],
                              capture_output=True, text=True).stdout
    for service, doc in sets.items():
        job = service[len("sluice-"):]
        assert doc["spec"]["replicas"] == spec.num_tasks(job), job
        for i in range(spec.num_tasks(job)):  # The spec names the pods' stable DNS names.
            assert spec.task_address(job, i) == "{}-{}.{}:2222".format(service, i, service)
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = " ".join(container["args"])
        assert "--job={}".format(job) in command and "--host=0.0.0.0" in command
        for flag in re.findall(r"--([a-z_]+)", command):
            assert re.search(r"-{}\b".format(flag), helpfull), "unknown flag --" + flag
        assert container["readinessProbe"]["tcpSocket"]["port"] == "control"
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["control"] == 2222
        for volume in pod["volumes"]:
            assert volume["secret"]["defaultMode"] == 0o400, volume
    services = {d["metadata"]["name"]: d for d in load("services.yaml")}
    for service in sets:
        assert services[service]["spec"]["clusterIP"] == "None"
