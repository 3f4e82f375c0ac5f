"""Pipelined training on a LocalCluster of real sluice_server processes: one run of the train
op on the whole batch, cut into m micro-batches flowing through p stages on p workers, takes
exactly the step of the unpipelined model (losses and variables after every step), for GPipe,
1F1B (m < p included) and interleaved 1F1B; each worker runs its actions in the schedule's
order and holds no more activations than the verifier predicted; inference returns the whole
batch's outputs; a refused schedule never runs; a worker killed mid-pipeline fails the step,
naming the task, and the step after its restart works."""

import numpy as np
import pytest

import sluice as sl
from cluster_faults import kill_mid_step, until_rejoined

HIDDEN = 5


@pytest.fixture(scope="module")
def cluster():
    with sl.LocalCluster(workers=4) as c:
        yield c


def worker(k):
    return "/job:worker/task:{}".format(k)


def build(p, devices=None, batch=24):
    """A p-stage MLP: stages 0..p-2 tanh(x W + b), the last softmax cross entropy."""
    x = sl.placeholder(sl.float32, [batch, 3], name="x")
    y = sl.placeholder(sl.int64, [batch], name="y")
    h = x
    logits = loss = None
    for k in range(p):
        width_in, width_out = (3 if k == 0 else HIDDEN), (2 if k == p - 1 else HIDDEN)
        ctx = sl.pipeline.stage(k, devices[k]) if devices else _nothing()
        with ctx:
            w = sl.Variable(np.linspace(-1, 1, width_in * width_out).reshape(
                width_in, width_out).astype(np.float32) * (1 + 0.1 * k), name="w%d" % k)
            b = sl.Variable(np.full([width_out], 0.05 * k, np.float32), name="b%d" % k)
            if k < p - 1:
                h = sl.tanh(sl.matmul(h, w) + b)
            else:
                logits = sl.matmul(h, w) + b
                loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=logits))
    return x, y, logits, loss


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def data(steps, batch=24):
    rng = np.random.default_rng(5)
    return [(rng.normal(size=(batch, 3)).astype(np.float32), rng.integers(0, 2, batch))
            for _ in range(steps)]


def reference(p, steps):
    g = sl.Graph()
    with g.as_default():
        x, y, _, loss = build(p)
        train = sl.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = sl.global_variables_initializer()
        variables = sl.global_variables()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        losses = []
        for xs, ys in data(steps):
            losses.append(sess.run([loss, train], {x: xs, y: ys})[0])
        return losses, sess.run(variables)


def pipelined(cluster, p, pipe, devices, steps):
    g = sl.Graph()
    with g.as_default():
        x, y, _, loss = build(p, devices)
        train = sl.train.GradientDescentOptimizer(0.5).minimize(loss, pipeline=pipe)
        init = sl.global_variables_initializer()
        variables = sl.global_variables()
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        losses, measured = [], None
        for xs, ys in data(steps):
            out = sess.run({"train": train, "loss": pipe.loss, "timing": pipe.timing},
                           {x: xs, y: ys})
            losses.append(out["loss"])
            measured = pipe.measure(out["timing"])
        return losses, sess.run(variables), measured


CASES = [(2, "gpipe", 1, 4), (2, "1f1b", 1, 1), (3, "1f1b", 1, 2), (3, "gpipe", 1, 6),
         (4, "1f1b", 1, 8), (4, "gpipe", 1, 3), (4, "interleaved_1f1b", 2, 4)]


@pytest.mark.parametrize("p,kind,per_worker,m", CASES)
def test_pipelined_training_equals_the_whole_batch(cluster, p, kind, per_worker, m):
    steps = 3
    want_losses, want_vars = reference(p, steps)
    workers = p // per_worker
    devices = [worker(k % workers) for k in range(p)]
    pipe = sl.pipeline.Pipeline(micro_batches=m, schedule=kind, stages_per_worker=per_worker)
    losses, variables, measured = pipelined(cluster, p, pipe, devices, steps)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for got, want in zip(variables, want_vars):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # Each worker ran its actions in the schedule's order ...
    for w, row in enumerate(pipe.schedule.rows):
        assert [a for a, _, _ in measured.timeline[w]] == row
    # ... and never held more micro-batches' activations than predicted.
    assert len(measured.peak_micro_batches) == p
    for got, predicted in zip(measured.peak_micro_batches, pipe.report.peak_micro_batches):
        assert got <= predicted
    assert len(measured.bubbles) == workers and all(0 <= b < 1 for b in measured.bubbles)
    assert "predicted bubble" in str(measured)


def test_the_verifier_predicts_the_closed_forms_for_the_built_pipeline():
    g = sl.Graph()
    with g.as_default():
        build(4, [worker(k) for k in range(4)], batch=32)
        loss = g.get_operations()[-1].outputs[0]
        pipe = sl.pipeline.Pipeline(micro_batches=8, schedule="1f1b")
        sl.train.GradientDescentOptimizer(0.1).minimize(loss, pipeline=pipe)
    p, m = 4, 8
    assert pipe.report.bubbles == pytest.approx([(p - 1) / (m + p - 1)] * p)
    assert pipe.report.peak_micro_batches == [min(p - s, m) for s in range(p)]
    # Activation bytes from the graph's shapes: stage 0 holds MatMul, Add, Tanh of [4, 5].
    assert pipe.activation_bytes[0] == 3 * 4 * HIDDEN * 4
    assert pipe.report.stages[0]["peak_bytes"] == 4 * pipe.activation_bytes[0]


def _layer(width, k):
    def layer(h):
        fan_in = h.shape.as_list()[1]
        w = sl.Variable(np.linspace(-0.5, 0.5, fan_in * width).reshape(fan_in, width).astype(
            np.float32) * (1 + 0.1 * k), name="w%d" % k)
        return sl.tanh(sl.matmul(h, w))
    return layer


def test_a_layer_stack_cut_by_estimated_cost_trains_like_the_whole_batch(cluster):
    layers = [_layer(w, k) for k, w in enumerate([4, 8, 8, 6, 2])]
    xs, ys = data(1)[0]

    def run(pipelined):
        g = sl.Graph()
        with g.as_default():
            x = sl.placeholder(sl.float32, [24, 3])
            y = sl.placeholder(sl.int64, [24])
            devices = [worker(k) for k in range(3)]
            if pipelined:
                logits, plan = sl.pipeline.stack(layers, x, devices)
                with sl.pipeline.stage(2, devices[2]):
                    loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=y, logits=logits))
                pipe = sl.pipeline.Pipeline(4, schedule="1f1b")
                train = sl.train.GradientDescentOptimizer(0.5).minimize(loss, pipeline=pipe)
                loss = pipe.loss
            else:
                h = x
                for layer in layers:
                    h = layer(h)
                loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=h))
                train = sl.train.GradientDescentOptimizer(0.5).minimize(loss)
                plan = None
            init = sl.global_variables_initializer()
        with sl.Session(cluster.target if pipelined else "", graph=g) as sess:
            sess.run(init)
            losses = [sess.run([loss, train], {x: xs, y: ys})[0] for _ in range(3)]
        return losses, plan

    want, _ = run(False)
    got, plan = run(True)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert len(plan.stages) == 3 and sum(plan.stage_costs) == sum(plan.layer_costs)


def test_pipelined_inference_returns_the_whole_batchs_outputs(cluster):
    g = sl.Graph()
    with g.as_default():
        x, _, logits, _ = build(3, [worker(k) for k in range(3)])
        out = sl.pipeline.forward(logits, micro_batches=4)
        init = sl.global_variables_initializer()
    xs, _ = data(1)[0]
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        whole, piped = sess.run([logits, out], {x: xs})
    assert out.op.device == worker(2)
    np.testing.assert_allclose(piped, whole, rtol=1e-6, atol=1e-7)


def test_refused_pipelines_say_why():
    g = sl.Graph()
    with g.as_default():
        _, _, _, loss = build(2, [worker(0), worker(1)], batch=24)
        opt = sl.train.GradientDescentOptimizer(0.1)
        deadlock = sl.pipeline.Pipeline(2, schedule="0F0,0B0,0F1,0B1\n1F1,1B1,1F0,1B0\n")
        before = len(g)
        with pytest.raises(sl.errors.FailedPreconditionError,
                           match="the schedule deadlocks: worker 0 at 0B0 waits for 1B0"):
            opt.minimize(loss, pipeline=deadlock)
        assert len(g) == before
        with pytest.raises(sl.errors.ResourceExhaustedError,
                           match="would hold .* bytes of activations at its peak; the budget "
                                 "is 64"):
            opt.minimize(loss, pipeline=sl.pipeline.Pipeline(4, memory_budget=64))
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match="dimension 0 of shape \\[24,3\\] \\(size 24\\) cannot be split "
                                 "into 5 equal parts"):
            opt.minimize(loss, pipeline=sl.pipeline.Pipeline(5))
    with sl.Graph().as_default():
        with pytest.raises(ValueError, match="no pipeline stages in this graph"):
            sl.pipeline.forward(sl.constant(1.0), 2)
        with sl.pipeline.stage(1, worker(1)):
            sl.constant(1.0)
        with pytest.raises(ValueError, match="numbered 0..1 without gaps; missing \\[0\\]"):
            sl.pipeline.forward(sl.constant(2.0), 2)


def test_a_worker_killed_mid_pipeline_fails_the_step_and_the_restarted_one_works():
    with sl.LocalCluster(workers=2) as c:
        g = sl.Graph()
        with g.as_default():
            x = sl.placeholder(sl.float32, [512, 256], name="x")
            with sl.pipeline.stage(0, worker(0)):
                w0 = sl.Variable(np.eye(256, dtype=np.float32), name="w0")
                h = sl.tanh(sl.matmul(x, w0))
            with sl.pipeline.stage(1, worker(1)):  # Heavy: a step takes worker 1 a while.
                w1 = sl.Variable(np.eye(256, dtype=np.float32) * 0.5, name="w1")
                for _ in range(150):
                    h = sl.tanh(sl.matmul(h, w1))
                loss = sl.reduce_mean(h)
            pipe = sl.pipeline.Pipeline(4, schedule="1f1b")
            train = sl.train.GradientDescentOptimizer(0.1).minimize(loss, pipeline=pipe)
            init = sl.global_variables_initializer()
        feed = {x: np.ones([512, 256], np.float32)}
        config = sl.ConfigProto(step_timeout_seconds=30)
        with sl.Session(c.target, graph=g, config=config) as sess:
            sess.run(init)
            sess.run(train, feed)
            error, _ = kill_mid_step(c, 1, lambda: sess.run(train, feed), cpu=0.1)
            assert isinstance(error, sl.errors.UnavailableError), error
            assert "lost /job:worker/task:1" in str(error)
            assert str(error).endswith("(/job:worker/task:1 ran stage 1 of pipeline 'pipeline')")
        c.restart_worker(1)
        with sl.Session(c.target, graph=g, config=config) as sess:
            until_rejoined(lambda: sess.run(init))
            sess.run(train, feed)
