"""examples/train_mlp.py runs on a two-worker LocalCluster (and in process), prints one loss
per step, and the loss goes down; both runs print the same losses. examples/pipeline_mlp.py
trains a 4-stage pipeline and measures the activations the verifier predicted."""

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


PIPELINE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "pipeline_mlp.py")


def test_pipeline_example_trains_and_puts_the_measured_run_beside_the_prediction():
    out = subprocess.run([sys.executable, PIPELINE, "--epochs", "3"], check=True,
                         capture_output=True, text=True, env=dict(os.environ)).stdout
    epochs = re.findall(r"^epoch \d  loss (\S+)  accuracy (\S+)  bubble", out, re.M)
    assert len(epochs) == 3, out
    assert float(epochs[-1][0]) < float(epochs[0][0]) and float(epochs[-1][1]) > 0.7, out
    # 1F1B on 4 stages: stage s holds min(4 - s, 8) micro-batches, measured as predicted.
    assert re.search(r"^0  4  4\n1  3  3\n2  2  2\n3  1  1$", out, re.M), out
