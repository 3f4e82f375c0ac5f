"""sl.pipeline: generated schedules, PyTorch's CSV, and the verifier's bubble, memory, deadlock
and budget answers against TRAINING.md's closed forms (the C++ tests cover the rest)."""

import pytest

import sluice as sl


@pytest.mark.parametrize("kind", ["gpipe", "1f1b"])
def test_uniform_costs_give_the_closed_forms(kind):
    p, m = 4, 16
    s = sl.pipeline.schedule(kind, stages=p, micro_batches=m)
    assert s.num_workers == p and len(s.rows[0]) == 2 * m
    r = sl.pipeline.simulate(s, forward=1.0, backward=2.0, activation_bytes=10, credits=100)
    assert r.makespan == pytest.approx(3.0 * (m + p - 1))
    assert r.bubbles == pytest.approx([(p - 1) / (m + p - 1)] * p)
    want = [m] * p if kind == "gpipe" else [min(p - s, m) for s in range(p)]
    assert r.peak_micro_batches == want
    assert [st["peak_bytes"] for st in r.stages] == [10 * k for k in want]
    assert "bubble" in str(r) and "0F0@0" in str(r)


def test_interleaving_and_the_csv_round_trip():
    s = sl.pipeline.schedule("interleaved_1f1b", workers=2, stages_per_worker=2, micro_batches=4)
    assert {a[0] for a in s.rows[0]} == {"0", "2"} and {a[0] for a in s.rows[1]} == {"1", "3"}
    again = sl.pipeline.Schedule.from_csv(s.to_csv())
    assert again.rows == s.rows
    r = sl.pipeline.simulate(s.to_csv(), forward=0.5, backward=1.0, credits=100)
    assert r.bubbles == pytest.approx([1 / (2 * 4 + 1)] * 2)


def test_a_deadlock_and_a_budget_are_refused_with_the_reason():
    with pytest.raises(sl.errors.FailedPreconditionError,
                       match="the schedule deadlocks: worker 0 at 0F1 waits for a credit on edge "
                             "0->1"):
        sl.pipeline.simulate("0F0,0F1,0B0,0B1\n1F1,1F0,1B0,1B1\n", credits=1)
    gpipe = sl.pipeline.schedule("gpipe", stages=2, micro_batches=8)
    with pytest.raises(sl.errors.ResourceExhaustedError,
                       match="worker 0 would hold 800 bytes of activations at its peak; the "
                             "budget is 500"):
        sl.pipeline.simulate(gpipe, activation_bytes=100, memory_budget=500, credits=100)
    with pytest.raises(sl.errors.InvalidArgumentError, match="worker 0 runs 0B0 before 0F0"):
        sl.pipeline.simulate("0B0,0F0\n1F0,1B0\n")
    with pytest.raises(ValueError, match="schedule kind must be one of"):
        sl.pipeline.schedule("zero_bubble", stages=2, micro_batches=2)
