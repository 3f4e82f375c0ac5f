"""examples/train_mlp.py runs, prints one loss per step, and the loss goes down."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_mlp.py")


@pytest.mark.skipif(not os.path.exists(EXAMPLE),
                    reason="examples/train_mlp.py is not among the test's files (it needs "
                           "exports_files([\"train_mlp.py\"]) in examples/BUILD.bazel)")
def test_train_mlp_example_prints_a_decreasing_loss_per_step():
    out = subprocess.run([sys.executable, EXAMPLE, "--steps", "20"], check=True,
                         capture_output=True, text=True, env=dict(os.environ)).stdout
    losses = [float(v) for v in re.findall(r"^step +\d+  loss (\S+)$", out, re.M)]
    assert len(losses) == 20, out
    assert losses[-1] < 0.5 * losses[0], out
    assert re.search(r"^training accuracy 0\.9\d\d$", out, re.M), out
