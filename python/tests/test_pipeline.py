"""sl.pipeline: generated schedules, PyTorch's CSV, and the verifier's bubble, memory, deadlock
and budget answers against TRAINING.md's closed forms (the C++ tests cover the rest)."""

import numpy as np
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


def _brute_force_best(costs, p):
    """The smallest largest-run sum over every way to cut costs into p consecutive runs."""
    import itertools
    n = len(costs)
    best = None
    for cuts in itertools.combinations(range(1, n), p - 1):
        bounds = (0,) + cuts + (n,)
        worst = max(sum(costs[a:b]) for a, b in zip(bounds, bounds[1:]))
        best = worst if best is None else min(best, worst)
    return best


def test_balance_finds_the_best_cut():
    import random
    rng = random.Random(4)
    for _ in range(200):
        n = rng.randint(1, 9)
        p = rng.randint(1, n)
        costs = [rng.randint(1, 50) for _ in range(n)]
        runs = sl.pipeline.balance(costs, p)
        assert len(runs) == p and [i for r in runs for i in r] == list(range(n))
        assert all(runs)
        assert max(sum(costs[i] for i in r) for r in runs) == _brute_force_best(costs, p)
    with pytest.raises(ValueError, match="cannot cut 2 layers into 3 stages"):
        sl.pipeline.balance([1, 1], 3)


def dense(width):
    def layer(h):
        w = sl.Variable(np.full([h.shape.as_list()[1], width], 0.1, np.float32))
        return sl.tanh(sl.matmul(h, w))
    return layer


def test_stack_cuts_layers_by_estimated_flops_and_places_them():
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [8, 4])
        devices = ["/job:worker/task:0", "/job:worker/task:1"]
        out, plan = sl.pipeline.stack([dense(16), dense(64), dense(64), dense(8)], x, devices)
    # Per layer: MatMul 2 * 8 * fan_in * fan_out plus Tanh's 8 * fan_out elements.
    assert plan.layer_costs == [2 * 8 * 4 * 16 + 8 * 16, 2 * 8 * 16 * 64 + 8 * 64,
                                2 * 8 * 64 * 64 + 8 * 64, 2 * 8 * 64 * 8 + 8 * 8]
    assert plan.stages == [[0, 1], [2, 3]]
    assert plan.stage_costs == [18048, 74304]
    assert "0  /job:worker/task:0  0-1  18048  0.20" in str(plan)
    assert out.op.device == devices[1]
    matmuls = [op for op in g.get_operations() if op.type == "MatMul"]
    assert [op.device for op in matmuls] == [devices[0]] * 2 + [devices[1]] * 2
    with g.as_default():
        assert [v.op.device for v in sl.global_variables()] == [devices[0]] * 2 + [devices[1]] * 2
        _, given = sl.pipeline.stack([dense(4)] * 3, x, devices, layer_costs=[1, 1, 5])
    assert given.stages == [[0, 1], [2]]
