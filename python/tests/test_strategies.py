"""The synchronous strategies on a LocalCluster (two replica workers, a third as parameter
server). BSP, in both topologies: N workers with batch b each take exactly the steps of one
worker with batch N*b (TRAINING.md: the strongest equality test there is), for SGD and
Momentum, step by step, and the replicas' copies stay equal. The others against numpy
implementations of their equations."""

import numpy as np
import pytest

import sluice as sl

DEVICES = ["/job:worker/task:0", "/job:worker/task:1"]
PS = "/job:worker/task:2"


@pytest.fixture(scope="module")
def cluster():
    with sl.LocalCluster(workers=3) as c:
        yield c


def model(x, y):
    w1 = sl.get_variable("w1", initializer=np.linspace(-1, 1, 12).reshape(4, 3).astype(
        np.float32))
    b1 = sl.get_variable("b1", [3], initializer=sl.constant_initializer(0.1))
    w2 = sl.get_variable("w2", initializer=np.linspace(1, -1, 6).reshape(3, 2).astype(
        np.float32))
    h = sl.nn.relu(sl.matmul(x, w1) + b1)
    return sl.reduce_mean(
        sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=sl.matmul(h, w2)))


def batches(steps, b):
    rng = np.random.default_rng(3)
    return [(rng.normal(size=(2 * b, 4)).astype(np.float32), rng.integers(0, 2, 2 * b))
            for _ in range(steps)]


# All-reduce with one bucket, with a bucket per gradient (the smallest holds 12 bytes), and the
# parameter-server form.
FORMS = {"allreduce": dict(), "allreduce_buckets": dict(bucket_bytes=12, algorithm="ring"),
         "parameter_server": dict(parameter_devices=[PS])}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("make_opt", [lambda: sl.train.GradientDescentOptimizer(0.5),
                                      lambda: sl.train.MomentumOptimizer(0.3, 0.9)])
def test_bsp_on_two_workers_equals_one_worker_with_the_whole_batch(cluster, make_opt, form):
    data = batches(5, b=3)
    # The reference: one model, batch 2b.
    ref = sl.Graph()
    with ref.as_default():
        x = sl.placeholder(sl.float32, [None, 4])
        y = sl.placeholder(sl.int64, [None])
        loss = model(x, y)
        train = make_opt().minimize(loss)
        init = sl.global_variables_initializer()
    with sl.Session(graph=ref) as sess:
        sess.run(init)
        want = []
        for xs, ys in data:
            want.append(sess.run(loss, {x: xs, y: ys}))
            sess.run(train, {x: xs, y: ys})
        want_w = sess.run([v for v in ref.get_collection("variables")
                           if v.op.name in ("w1", "b1", "w2")])
    g = sl.Graph()
    with g.as_default():
        bsp = sl.train.BSPStrategy(DEVICES, **FORMS[form])
        inputs = [(sl.placeholder(sl.float32, [None, 4]), sl.placeholder(sl.int64, [None]))
                  for _ in DEVICES]
        train_op, mean_loss = bsp.minimize(make_opt(), model, inputs)
        init = sl.global_variables_initializer()
    if form == "parameter_server":
        assert [v.op.device for v in bsp.variables] == [PS] * 3
        # The update and the optimizer's slots live beside the variables.
        assert {op.device for op in g.get_operations() if "Apply" in op.type} == {PS}
    else:
        assert [v.op.device for v in bsp.replica_variables[1]] == [DEVICES[1]] * 3
        # Gradients in production order (w2, b1, w1): 24, 12 and 48 bytes.
        assert bsp.buckets == ([[0, 1, 2]] if form == "allreduce" else [[0], [1], [2]])
    def shard(xs, ys):
        return {inputs[0][0]: xs[:3], inputs[0][1]: ys[:3],
                inputs[1][0]: xs[3:], inputs[1][1]: ys[3:]}

    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        got = []
        for xs, ys in data:
            got.append(sess.run(mean_loss, shard(xs, ys)))
            sess.run(train_op, shard(xs, ys))
        replicas = sess.run(bsp.replica_variables)
        after = sess.run(mean_loss, shard(*data[0]))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for k in range(3):
        np.testing.assert_allclose(replicas[0][k], want_w[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(replicas[1][k], replicas[0][k], rtol=1e-6, atol=1e-7)
    assert after < got[0]  # Training lowered the loss of the first batch.


def linear_model(x, y):
    w = sl.get_variable("w", initializer=np.array([[0.5], [-0.5]], np.float64))
    return sl.reduce_mean(sl.square(sl.matmul(x, w) - y))


def linear_grad(w, x, y):
    return 2.0 * x.T @ (x @ w - y) / len(x)


def shards(steps, n=2, b=4):
    rng = np.random.default_rng(8)
    return [[(rng.normal(size=(b, 2)), rng.normal(size=(b, 1))) for _ in range(n)]
            for _ in range(steps)]


def strategy_feed(inputs, step_data):
    feed = {}
    for (x_ph, y_ph), (x, y) in zip(inputs, step_data):
        feed[x_ph], feed[y_ph] = x, y
    return feed


def build(strategy, lr=0.1):
    g = sl.Graph()
    with g.as_default():
        inputs = [(sl.placeholder(sl.float64, [None, 2]), sl.placeholder(sl.float64, [None, 1]))
                  for _ in DEVICES]
        ops = strategy.minimize(sl.train.GradientDescentOptimizer(lr), linear_model, inputs)
        init = sl.global_variables_initializer()
    return g, inputs, ops, init


def test_model_averaging_matches_its_equations(cluster):
    data, lr, period = shards(6), 0.1, 2
    strategy = sl.train.ModelAveragingStrategy(DEVICES, period=period)
    g, inputs, _, init = build(strategy, lr)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        got = []
        for step_data in data:
            strategy.run_step(sess, strategy_feed(inputs, step_data))
            got.append(sess.run([vs[0] for vs in strategy.replica_variables]))
    # numpy: K local SGD steps from the common point, then x_i <- mean_j x_j.
    x = [np.array([[0.5], [-0.5]]) for _ in DEVICES]
    for t, step_data in enumerate(data):
        x = [xi - lr * linear_grad(xi, *d) for xi, d in zip(x, step_data)]
        if (t + 1) % period == 0:
            x = [np.mean(x, axis=0)] * len(DEVICES)
        for i in range(len(DEVICES)):
            np.testing.assert_allclose(got[t][i], x[i], rtol=1e-12)
    assert not np.allclose(got[0][0], got[0][1])  # Between averagings the copies differ.


def test_elastic_averaging_matches_its_equations(cluster):
    data, lr, alpha = shards(5), 0.1, 0.2
    strategy = sl.train.ElasticAveragingStrategy(DEVICES, moving_rate=alpha, period=1)
    g, inputs, _, init = build(strategy, lr)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for step_data in data:
            strategy.run_step(sess, strategy_feed(inputs, step_data))
        got_x = sess.run([vs[0] for vs in strategy.replica_variables])
        got_c = sess.run([cs[0] for cs in strategy.center_variables])
    # numpy, all terms before the step: x_i -= lr*g_i(x_i) + alpha*(x_i - c);
    # c += alpha * sum_i (x_i - c).
    x = [np.array([[0.5], [-0.5]]) for _ in DEVICES]
    c = np.array([[0.5], [-0.5]])
    for step_data in data:
        diffs = [xi - c for xi in x]
        x = [xi - lr * linear_grad(xi, *d) - alpha * di
             for xi, d, di in zip(x, step_data, diffs)]
        c = c + alpha * np.sum(diffs, axis=0)
    for i in range(len(DEVICES)):
        np.testing.assert_allclose(got_x[i], x[i], rtol=1e-12)
        np.testing.assert_allclose(got_c[i], c, rtol=1e-12)
    with pytest.raises(TypeError, match="GradientDescentOptimizer"):
        sl.train.ElasticAveragingStrategy(DEVICES, 0.1).minimize(
            sl.train.AdamOptimizer(0.1), linear_model, [])


def test_admm_least_squares_reaches_the_single_machine_optimum(cluster):
    rng = np.random.default_rng(21)
    xs = [rng.normal(size=(20, 2)) for _ in DEVICES]
    ys = [x @ np.array([[1.5], [-2.0]]) + rng.normal(0, 0.3, size=(20, 1)) for x in xs]
    # The centralised optimum of sum_i mean_i (x w - y)^2 (equal shard sizes): least squares
    # on all the data.
    optimum = np.linalg.lstsq(np.vstack(xs), np.vstack(ys), rcond=None)[0]
    strategy = sl.train.ADMMStrategy(DEVICES, rho=1.0, inner_steps=25)
    g, inputs, _, init = build(strategy, lr=0.1)
    feed = strategy_feed(inputs, list(zip(xs, ys)))
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        residuals = [strategy.run_round(sess, feed) for _ in range(40)]
        z = sess.run(strategy.z_variables[0][0])
        local = sess.run([v[0] for v in strategy.replica_variables])
    assert residuals[-1] < 1e-8 < residuals[0]
    np.testing.assert_allclose(z, optimum, atol=1e-4)  # The stated tolerance.
    for w in local:
        np.testing.assert_allclose(w, optimum, atol=1e-4)


def test_data_parallel_example_trains_with_every_strategy():
    import os
    import re
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data_parallel.py")
    out = subprocess.run([sys.executable, script, "--workers", "4", "--epochs", "2"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    for name in ("bsp", "bsp_parameter_server", "model_averaging", "easgd", "admm"):
        accuracy = [float(a) for a in re.findall(r"^{} epoch \d+  loss \S+  accuracy (\S+)$"
                                                  .format(name), out, re.M)]
        assert len(accuracy) == 2 and accuracy[-1] > 0.95, out
        assert re.search(r"^{}: bytes each task sends .*task 4 \d+$".format(name), out,
                         re.M), out


STRATEGIES = {
    "bsp_momentum": lambda: (sl.train.BSPStrategy(DEVICES), sl.train.MomentumOptimizer(0.1, 0.9)),
    "model_averaging": lambda: (sl.train.ModelAveragingStrategy(DEVICES, period=2),
                                sl.train.GradientDescentOptimizer(0.1)),
    "easgd": lambda: (sl.train.ElasticAveragingStrategy(DEVICES, moving_rate=0.2, period=2),
                      sl.train.GradientDescentOptimizer(0.1)),
    "admm": lambda: (sl.train.ADMMStrategy(DEVICES, rho=1.0, inner_steps=2),
                     sl.train.GradientDescentOptimizer(0.1)),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_strategy_restored_from_a_checkpoint_continues_as_if_uninterrupted(
        cluster, tmp_path, name):
    """Saved after 3 steps (mid-period for K = 2), restored into a fresh session: the next
    3 steps give every variable (local copies, centers, duals, slots, step counts) the values
    of an uninterrupted run."""
    data = shards(6)
    strategy, optimizer = STRATEGIES[name]()
    g = sl.Graph()
    with g.as_default():
        inputs = [(sl.placeholder(sl.float64, [None, 2]), sl.placeholder(sl.float64, [None, 1]))
                  for _ in DEVICES]
        ops = strategy.minimize(optimizer, linear_model, inputs)
        init = sl.global_variables_initializer()
        saver = sl.train.Saver()
        everything = sl.global_variables()

    def step(sess, step_data):
        feed = strategy_feed(inputs, step_data)
        if isinstance(strategy, sl.train.BSPStrategy):
            sess.run(ops[0], feed)
        elif isinstance(strategy, sl.train.ADMMStrategy):
            strategy.run_round(sess, feed)
        else:
            strategy.run_step(sess, feed)

    path = str(tmp_path / "strategy.ckpt")
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for d in data[:3]:
            step(sess, d)
        saver.save(sess, path)
        for d in data[3:]:
            step(sess, d)
        want = sess.run(everything)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        saver.restore(sess, path)
        for d in data[3:]:
            step(sess, d)
        got = sess.run(everything)
    assert len(everything) > 2  # More than the model: the strategy's own state.
    for v, a, b in zip(everything, want, got):
        np.testing.assert_array_equal(b, a, err_msg=v.op.name)


def scalar_model():
    """loss = -x: the gradient is -1 whatever x is (TRAINING.md's golden-value setting)."""
    x = sl.get_variable("x", initializer=np.float64(0.0))
    return -1.0 * x


@pytest.mark.parametrize("workers,period,alpha,want", [
    # One worker, tau = 2, alpha = 1: after step 1 x = 1, center 0; after step 2 x = 0, center 2.
    (1, 2, 1.0, [([1.0], 0.0), ([0.0], 2.0)]),
    # Two workers, tau = 1, alpha = 0.5, worker 0 then worker 1: x0 = 0.5, x1 = 0.75, center 0.75.
    (2, 1, 0.5, [([0.5, 0.75], 0.75)]),
])
def test_async_elastic_averaging_reproduces_the_golden_values(cluster, workers, period, alpha,
                                                              want):
    strategy = sl.train.AsyncElasticAveragingStrategy(DEVICES[:workers], moving_rate=alpha,
                                                      period=period, center_device=PS)
    g = sl.Graph()
    with g.as_default():
        strategy.minimize(sl.train.GradientDescentOptimizer(1.0), scalar_model,
                          [() for _ in range(workers)])
        init = sl.global_variables_initializer()
    assert strategy.center_variables[0].op.device == PS
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for xs, center in want:
            for w in range(workers):
                strategy.run_step(sess, w, {})
            got = sess.run([v[0] for v in strategy.replica_variables])
            assert got == xs and sess.run(strategy.center_variables[0]) == center
