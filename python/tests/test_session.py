"""Session.run: fetch and feed structures, dtypes, memory ownership, errors, threads and the GIL."""

import collections
import threading
import time

import numpy as np
import pytest

import sluice as sl

from two_worker_model import build_two_worker_model


def test_issue_example_graph_runs_in_process():
    g, m = build_two_worker_model()
    xv, yv = np.ones((2, 4), np.float32), np.array([0, 2])
    with sl.Session(graph=g) as sess:
        sess.run(m["init"])
        l, w1v, w2v = sess.run([m["loss"], m["w1"], m["w2"]], feed_dict={m["x"]: xv, m["y"]: yv})
    # Independent numpy forward pass from the fetched weights.
    z = np.maximum(xv @ w1v, 0) @ w2v
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    assert isinstance(l, np.float32)
    np.testing.assert_allclose(l, -log_p[np.arange(2), yv].mean(), rtol=1e-5)


def test_fetch_structures(graph, sess):
    a = sl.constant(1.0, name="a")
    b = sl.constant([2, 3], name="b")
    noop = sl.no_op(name="noop")
    Pair = collections.namedtuple("Pair", "first second")
    out = sess.run({"a": a, "list": [a, (b, noop)], "pair": Pair(a, b)})
    assert out["a"] == 1.0
    assert out["list"][0] == 1.0 and out["list"][1][1] is None
    np.testing.assert_array_equal(out["list"][1][0], [2, 3])
    assert isinstance(out["pair"], Pair) and out["pair"].first == 1.0
    assert sess.run(noop) is None
    assert sess.run("a:0") == 1.0 and sess.run("noop") is None
    assert sess.run([]) == []
    with pytest.raises(TypeError, match="cannot fetch 3"):
        sess.run(3)


def test_feeds_convert_python_values_and_other_dtypes(graph, sess):
    x = sl.placeholder(sl.float32, shape=[None, 2], name="x")
    y = x * 2
    np.testing.assert_array_equal(sess.run(y, {x: [[1, 2]]}), [[2, 4]])
    np.testing.assert_array_equal(sess.run(y, {"x:0": np.ones((1, 2), np.float32)}), [[2, 2]])
    # Non-contiguous arrays are fine.
    a = np.arange(8, dtype=np.float32).reshape(2, 4)[:, ::2]
    np.testing.assert_array_equal(sess.run(y, {x: a}), a * 2)
    # Another dtype converts, as in TensorFlow (test_tf1_surface.py has the refused cases).
    np.testing.assert_array_equal(sess.run(y, {x: np.ones((1, 2))}), [[2, 2]])
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"feed for 'x:0' has shape \[1,3\], incompatible with the graph's "
                             r"\[\?,2\]"):
        sess.run(y, {x: np.ones((1, 3), np.float32)})


def test_run_errors_name_the_node(graph, sess):
    x = sl.placeholder(sl.float32, shape=[None], name="x")
    r = sl.reshape(x, [2, 3], name="r")
    v = sl.Variable(np.zeros(2, np.float32), name="v")
    with pytest.raises(sl.errors.InvalidArgumentError) as info:
        sess.run(r, {x: np.ones(5, np.float32)})
    assert str(info.value) == ("node 'r' (Reshape): cannot reshape a tensor of shape [5] "
                               "(5 elements) into shape [2,3] (6 elements)")
    assert (info.value.node_name, info.value.op_type) == ("r", "Reshape")
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"node 'x' \(Placeholder\): placeholder 'x' must be fed"):
        sess.run(r)
    with pytest.raises(sl.errors.FailedPreconditionError,
                       match=r"node 'v' \(Variable\): variable 'v' is not initialized"):
        sess.run(v)
    # The session still works after errors.
    np.testing.assert_array_equal(sess.run(r, {x: np.arange(6, dtype=np.float32)}),
                                  np.arange(6).reshape(2, 3))


def test_fetches_never_alias_engine_memory(graph, sess):
    v = sl.Variable(np.zeros(3, np.float32), name="v")
    inc = v.assign_add(np.ones(3, np.float32))
    doubled = v * 2
    sess.run(v.initializer)
    before = sess.run(v)
    sess.run(inc)
    np.testing.assert_array_equal(before, [0, 0, 0])  # An update did not change our copy.
    before[:] = 42  # Writing our copy does not change the variable.
    np.testing.assert_array_equal(sess.run(v), [1, 1, 1])
    a, b = sess.run(v), sess.run(v)
    assert not np.shares_memory(a, b)
    fresh = sess.run(doubled)
    assert fresh.flags.writeable and fresh.flags.c_contiguous
    fresh += 1  # A handed-over result is ours to modify.
    np.testing.assert_array_equal(fresh, [3, 3, 3])


def test_closed_session(graph):
    a = sl.constant(1.0)
    s = sl.Session(graph=graph)
    s.close()
    with pytest.raises(RuntimeError, match="closed Session"):
        s.run(a)


def test_default_session_eval_and_run(graph):
    v = sl.Variable(5.0, name="v")
    doubled = v * 2
    with sl.Session(graph=graph) as s:
        assert sl.get_default_session() is s
        v.initializer.run()
        assert doubled.eval() == 10.0
        assert v.eval() == 5.0
    assert sl.get_default_session() is None
    with pytest.raises(ValueError, match="no default session"):
        v.eval()


def test_config_threads(graph):
    a = sl.constant(np.ones((64, 64), np.float32))
    config = sl.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)
    with sl.Session(graph=graph, config=config) as s:
        np.testing.assert_allclose(s.run(a @ a), np.full((64, 64), 64.0))


def test_concurrent_runs_from_threads(graph, sess):
    x = sl.placeholder(sl.float64, shape=[None, 8], name="x")
    w = sl.constant(np.linspace(-1, 1, 64).reshape(8, 8))
    y = sl.tanh(x @ w)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            a = rng.normal(size=(16, 8))
            got = sess.run(y, {x: a})
            if not np.allclose(got, np.tanh(a @ np.linspace(-1, 1, 64).reshape(8, 8))):
                errors.append(seed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_gil_is_released_while_the_engine_runs(graph):
    # A long chain of matmuls runs in a worker thread while this thread counts loop iterations.
    # Holding the GIL for the run would stop this thread for all but ~one switch interval of
    # it; released, this thread counts throughout.
    x = sl.placeholder(sl.float32, shape=[384, 384])
    y = x
    for _ in range(120):
        y = sl.tanh(y @ x)
    feed = {x: np.full((384, 384), 1e-3, np.float32)}
    config = sl.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)
    with sl.Session(graph=graph, config=config) as s:
        s.run(y, feed)  # Warm-up: creates the executor.
        me = threading.current_thread()  # Calibrate with the same loop shape as below.
        rate_start, n = time.perf_counter(), 0
        while me.is_alive() and n < 200000:
            n += 1
        rate = n / (time.perf_counter() - rate_start)  # Loop iterations per second.
        started = threading.Event()
        run_time = []

        def worker():
            started.set()
            t0 = time.perf_counter()
            s.run(y, feed)
            run_time.append(time.perf_counter() - t0)

        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        count = 0
        while t.is_alive():
            count += 1
        t.join()
    # Measured here: released, count is about rate * run_time / 2 (this thread shares the
    # cores with the engine); held, about rate * 10 ms whatever the run time.
    assert run_time[0] > 0.1, "the run was too short to tell; make the graph larger"
    assert count > rate * run_time[0] * 0.2, (count, rate, run_time)
