"""sl.progress.Progress against a hand-driven clock: the line's rate, loss and ETA, its pacing
(at most one line per `every` seconds), and the final line."""

import io

import numpy as np

import sluice as sl


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_lines_are_paced_and_say_rate_loss_and_eta():
    clock, out = Clock(), io.StringIO()
    p = sl.progress.Progress(total=100, desc="train", every=1.0, out=out, clock=clock)
    clock.now += 0.5
    p.update(loss=np.float32(2.0))  # 0.5 s in: too soon for a line.
    assert out.getvalue() == ""
    clock.now += 0.5
    p.update(9, loss=0.25)          # 10 steps in 1 s.
    assert out.getvalue() == "train  10/100 steps  10.0 steps/s  loss 0.2500  ETA 9.0 s\n"
    clock.now += 0.1
    p.update(10)                    # 0.1 s after the last line: none.
    assert out.getvalue().count("\n") == 1
    clock.now += 78.9               # 80 s in, 20 steps: 0.25 steps/s, 320 s left.
    p.update(0)
    assert out.getvalue().splitlines()[-1] == \
        "train  20/100 steps  0.2 steps/s  loss 0.2500  ETA 5m20s"
    p.close()
    assert out.getvalue().splitlines()[-1] == \
        "train  20/100 steps  0.2 steps/s  loss 0.2500  ETA 5m20s  in 1m20s"


def test_without_a_total_there_is_no_eta():
    clock, out = Clock(), io.StringIO()
    with sl.progress.Progress(out=out, clock=clock, every=0) as p:
        clock.now += 2
        p.update(4)
    assert out.getvalue().splitlines() == ["4 steps  2.0 steps/s", "4 steps  2.0 steps/s  in 2.0 s"]
