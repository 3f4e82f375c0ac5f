"""examples/train_mlp.py runs on a two-worker LocalCluster (and in process), prints one loss
per step, and the loss goes down; both runs print the same losses."""

import os
import re
import subprocess
import sys

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_mlp.py")


def run_example(*flags):
    out = subprocess.run([sys.executable, EXAMPLE, "--steps", "20", *flags], check=True,
                         capture_output=True, text=True, env=dict(os.environ)).stdout
    losses = [float(v) for v in re.findall(r"^step +\d+  loss (\S+)$", out, re.M)]
    assert len(losses) == 20, out
    assert losses[-1] < 0.5 * losses[0], out
    assert re.search(r"^training accuracy 0\.9\d\d$", out, re.M), out
    return out, losses


def test_train_mlp_example_trains_on_a_two_worker_local_cluster():
    out, cluster_losses = run_example()
    assert re.search(r"^cluster: master grpc://127\.0\.0\.1:\d+, 2 workers$", out, re.M), out
    _, local_losses = run_example("--in_process")
    assert cluster_losses == local_losses
