"""The TF1 tutorial-style examples run as users run them: the CNN classifier (conv, pooling,
dropout, Adam) in process and on a two-worker LocalCluster, and the between-graph ps + 2 workers
trainer as three processes."""

import os
import re
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def run(script, *flags, timeout=600):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *flags], check=True,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ)).stdout


def test_cnn_classifier_learns_in_process_and_on_a_cluster():
    for flags in ([], ["--cluster"]):
        out = run("tf1_cnn_classifier.py", "--steps", "150", *flags)
        losses = [float(v) for v in re.findall(r"^step +\d+  loss (\S+)$", out, re.M)]
        assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0], out
        accuracy = float(re.search(r"^test accuracy (\S+)$", out, re.M).group(1))
        assert accuracy > 0.9, out


def test_between_graph_ps_trainer_trains_shared_variables():
    out = run("tf1_ps_trainer.py", "--local", "--steps", "150")
    done = re.findall(r"^worker (\d) done: global step (\d+), loss (\S+)$", out, re.M)
    assert sorted(d[0] for d in done) == ["0", "1"], out
    # Both workers advanced the one global step on the ps: the last to finish saw all 300.
    assert max(int(d[1]) for d in done) == 300, out
    assert all(float(d[2]) < 1e-3 for d in done), out
