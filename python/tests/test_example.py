"""examples/train_mlp.py runs on a two-worker LocalCluster (and in process), prints one loss
per step, and the loss goes down; both runs print the same losses. examples/pipeline_mlp.py
trains a pipeline with each schedule and measures the activations the verifier predicted."""

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


def test_pipeline_example_trains_with_each_schedule_and_measures_the_prediction():
    out = subprocess.run([sys.executable, PIPELINE, "--epochs", "2"], check=True,
                         capture_output=True, text=True, env=dict(os.environ)).stdout
    runs = out.split("== ")[1:]
    assert [r.split(":")[0] for r in runs] == ["gpipe", "1f1b", "interleaved_1f1b"], out
    for run in runs:
        epochs = re.findall(r"^epoch \d  loss (\S+)  accuracy (\S+)  bubble", run, re.M)
        assert len(epochs) == 2, run
        assert float(epochs[-1][0]) < float(epochs[0][0]) and float(epochs[-1][1]) > 0.6, run
    # Stage s holds m = 8 micro-batches under GPipe, min(4 - s, 8) under 1F1B: measured as
    # predicted.
    assert re.search(r"^0  8  8\n1  8  8\n2  8  8\n3  8  8$", runs[0], re.M), runs[0]
    assert re.search(r"^0  4  4\n1  3  3\n2  2  2\n3  1  1$", runs[1], re.M), runs[1]


def test_trace_example_writes_the_chrome_trace_and_the_picture(tmp_path):
    import json
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "trace_step.py")
    out = subprocess.run([sys.executable, script, "--out", str(tmp_path / "step")], check=True,
                         capture_output=True, text=True, env=dict(os.environ)).stdout
    assert "hops (us)" in out and "received 16384 bytes in 1 tensor(s)" in out, out
    events = json.load(open(tmp_path / "step.json"))["traceEvents"]
    assert sum(e.get("cat") == "transfer" for e in events) == 6  # Three transfers, both ends.
    assert open(tmp_path / "step.svg").read().startswith("<svg")
