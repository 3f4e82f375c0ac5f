"""A cluster token (docs/security.md): real server processes started with one refuse every call
without it with UNAUTHENTICATED (sessions, and a raw gRPC call to each service of a worker),
count the refusals, and serve a client that carries it; the token file must be owner-only."""

import os
import subprocess
import sys

import numpy as np
import pytest

import sluice as sl

PROBE = r"""
import sys
import sluice as sl
g = sl.Graph()
with g.as_default():
    x = sl.constant(1.0) + 1.0
try:
    with sl.Session(sys.argv[1], graph=g) as sess:
        print("ran", sess.run(x))
except sl.errors.OpError as e:
    print(type(e).__name__, e)
"""


def probe(target, token=None):
    """Runs a session from another process, with or without the token in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_CLUSTER_TOKEN")}
    if token is not None:
        env["SLUICE_CLUSTER_TOKEN"] = token
    out = subprocess.run([sys.executable, "-c", PROBE, target], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip()


def test_a_cluster_with_a_token_serves_only_calls_that_carry_it():
    with sl.LocalCluster(workers=2, cluster_token="s3cret-token",
                         worker_flags=["--metrics_port=0"]) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                a = sl.constant(np.arange(4.0)) * 2.0
            with sl.device("/job:worker/task:1"):
                b = sl.reduce_sum(a)
        with sl.Session(cluster.target, graph=g) as sess:  # This process has the token.
            assert sess.run(b) == 12.0
        assert probe(cluster.target, "s3cret-token") == "ran 2.0"  # A scalar.
        refused = probe(cluster.target)
        assert refused.startswith("UnauthenticatedError"), refused
        assert "requires its token on every call; the call had none" in refused
        wrong = probe(cluster.target, "guess")
        assert "the call's cluster token is not this cluster's" in wrong, wrong
        # A worker's own services refuse a stranger too (a heartbeat, the cheapest call).
        control, data = cluster.worker_address(0)
        stranger = subprocess.run(
            [sys.executable, "-c", "import sluice as sl, sys; "
             "print(sl._core.core._heartbeat(sys.argv[1]))", control],
            env={k: v for k, v in os.environ.items() if not k.startswith("SLUICE_CLUSTER")},
            capture_output=True, text=True, timeout=60)
        assert "UNAUTHENTICATED" in stranger.stdout + stranger.stderr
        import urllib.request
        text = urllib.request.urlopen(cluster.metrics_url("worker", 0), timeout=10).read()
        assert b"sluice_unauthenticated_calls_total" in text
    assert "SLUICE_CLUSTER_TOKEN" not in os.environ  # Taken back on stop.


def test_token_files_must_be_owner_only(tmp_path):
    path = tmp_path / "token"
    path.write_text("  abc123\n")
    os.chmod(path, 0o644)
    with pytest.raises(sl.errors.PermissionDeniedError, match="may be read by group or others"):
        sl.set_cluster_token(file=str(path))
    os.chmod(path, 0o600)
    sl.set_cluster_token(file=str(path))
    sl.set_cluster_token("")
    with pytest.raises(sl.errors.NotFoundError, match="does not exist"):
        sl.set_cluster_token(file=str(tmp_path / "missing"))
