"""TF1 variable sharing (variable_scope, get_variable, initializers, custom getters), the
global step, and the Saver's checkpoint state file with latest_checkpoint."""

import math
import os

import numpy as np
import pytest

import sluice as sl


def dense(x, units):
    w = sl.get_variable("w", [int(x.shape[1]), units])
    b = sl.get_variable("b", [units], initializer=sl.zeros_initializer())
    return sl.matmul(x, w) + b


def test_scopes_create_then_share_variables(graph, sess):
    x = sl.placeholder(sl.float32, [None, 3])
    with sl.variable_scope("layer"):
        y1 = dense(x, 2)
    with sl.variable_scope("layer", reuse=True):
        y2 = dense(x, 2)
    names = sorted(v.op.name for v in sl.global_variables())
    assert names == ["layer/b", "layer/w"]
    sess.run(sl.global_variables_initializer())
    xs = np.ones((2, 3), np.float32)
    a, b = sess.run([y1, y2], {x: xs})
    np.testing.assert_array_equal(a, b)
    # Ops are named under the scope's name scope, the second entry made unique.
    assert y1.op.name.startswith("layer/") and y2.op.name.startswith("layer_1/")


def test_reuse_errors_say_what_to_set(graph):
    with sl.variable_scope("s"):
        sl.get_variable("v", [2])
        with pytest.raises(ValueError, match=r"Variable s/v already exists, disallowed.*"
                                             r"reuse=True or reuse=sl.AUTO_REUSE"):
            sl.get_variable("v", [2])
    with sl.variable_scope("s", reuse=True):
        with pytest.raises(ValueError, match=r"Variable s/u does not exist"):
            sl.get_variable("u", [2])
        with pytest.raises(ValueError, match=r"specified shape \[3\] and found shape \[2\]"):
            sl.get_variable("v", [3])
    with pytest.raises(ValueError, match="must be fully defined"):
        sl.get_variable("partial", [None, 2])


def test_auto_reuse_inheritance_and_reuse_variables(graph):
    with sl.variable_scope("a", reuse=sl.AUTO_REUSE):
        v1 = sl.get_variable("v", [1])
        v2 = sl.get_variable("v", [1])
        with sl.variable_scope("inner"):
            i1 = sl.get_variable("w", [1])
            i2 = sl.get_variable("w", [1])
    assert v1 is v2 and i1 is i2 and i1.op.name == "a/inner/w"
    with sl.variable_scope("b") as scope:
        first = sl.get_variable("v", [1])
        scope.reuse_variables()
        assert sl.get_variable("v", [1]) is first
        with sl.variable_scope("c", reuse=False):  # False inherits the enclosing reuse.
            assert sl.get_variable_scope().reuse is True
    with sl.variable_scope(scope, reuse=True):  # Re-entered from the object.
        assert sl.get_variable("v") is first


def test_initializers_and_dtypes(graph, sess):
    with sl.variable_scope("init", initializer=sl.constant_initializer(0.5)):
        half = sl.get_variable("half", [2, 2])
        ints = sl.get_variable("count", [3], dtype=sl.int32)  # Scope initializer 0.5 -> 0.
    from_array = sl.get_variable("arr", initializer=np.arange(4, dtype=np.float64))
    normal = sl.get_variable("n", [2000], initializer=sl.random_normal_initializer(1.0, 0.1,
                                                                                   seed=3))
    trunc = sl.get_variable("t", [2000], initializer=sl.truncated_normal_initializer(0, 1, 4))
    glorot = sl.get_variable("g", [30, 20])  # The default for floats: glorot_uniform.
    conv = sl.get_variable("k", [3, 3, 4, 8], initializer=sl.glorot_uniform_initializer(5))
    sess.run(sl.global_variables_initializer())
    h, i, a, n, t, g, k = sess.run([half, ints, from_array, normal, trunc, glorot, conv])
    np.testing.assert_array_equal(h, np.full((2, 2), 0.5, np.float32))
    assert i.dtype == np.int32
    assert a.dtype == np.float64 and from_array.get_shape().as_list() == [4]
    assert abs(n.mean() - 1.0) < 0.02 and abs(n.std() - 0.1) < 0.01
    assert np.abs(t).max() <= 2.0
    limit = math.sqrt(6.0 / 50)
    assert np.abs(g).max() <= limit and np.abs(g).max() > 0.9 * limit
    conv_limit = math.sqrt(6.0 / (9 * 4 + 9 * 8))  # Receptive field counts in both fans.
    assert np.abs(k).max() <= conv_limit and np.abs(k).max() > 0.9 * conv_limit


def test_custom_getters_compose_outer_first(graph):
    calls = []

    def outer(getter, name, *args, **kwargs):
        calls.append("outer " + name)
        return getter(name, *args, **kwargs)

    def inner(getter, name, *args, **kwargs):
        calls.append("inner " + name)
        kwargs["trainable"] = False
        return getter(name, *args, **kwargs)

    with sl.variable_scope("o", custom_getter=outer):
        with sl.variable_scope("i", custom_getter=inner):
            v = sl.get_variable("v", [1])
    assert calls == ["outer o/i/v", "inner o/i/v"]
    assert v not in sl.trainable_variables()


def test_regularizer_losses_are_collected(graph, sess):
    with sl.variable_scope("r", regularizer=lambda w: 0.5 * sl.reduce_sum(w * w)):
        sl.get_variable("w", initializer=np.array([1.0, 2.0], np.float32))
    losses = sl.get_collection(sl.GraphKeys.REGULARIZATION_LOSSES)
    sess.run(sl.global_variables_initializer())
    assert len(losses) == 1 and sess.run(losses[0]) == pytest.approx(2.5)


def test_global_step_counts_training_steps(graph, sess):
    step = sl.train.get_or_create_global_step()
    assert sl.train.get_or_create_global_step() is step
    assert step.op.name == "global_step" and step.dtype == sl.int64
    assert step not in sl.trainable_variables()
    w = sl.Variable(np.float32(3.0))
    train = sl.train.GradientDescentOptimizer(0.1).minimize(sl.square(w), global_step=step)
    sess.run(sl.global_variables_initializer())
    for _ in range(3):
        sess.run(train)
    assert sess.run(step) == 3
    assert sess.run(w) == pytest.approx(3.0 * 0.8 ** 3)
    with pytest.raises(ValueError, match="already has a global step"):
        sl.train.create_global_step()


def test_saver_writes_checkpoint_state_and_keeps_the_newest(graph, sess, tmp_path):
    step = sl.train.get_or_create_global_step()
    w = sl.Variable(np.float32(1.0), name="w")
    bump = sl.assign_add(w, 1.0)
    inc = sl.assign_add(step, np.int64(1))
    saver = sl.train.Saver(max_to_keep=2)
    sess.run(sl.global_variables_initializer())
    assert sl.train.latest_checkpoint(str(tmp_path)) is None
    prefix = str(tmp_path / "model.ckpt")
    paths = []
    for _ in range(3):
        sess.run([bump, inc])
        paths.append(saver.save(sess, prefix, global_step=step))
    assert paths == [prefix + "-1", prefix + "-2", prefix + "-3"]
    assert not os.path.exists(paths[0]) and os.path.exists(paths[1])  # max_to_keep=2
    assert sl.train.latest_checkpoint(str(tmp_path)) == paths[2]
    state = sl.train.get_checkpoint_state(str(tmp_path))
    assert state.all_model_checkpoint_paths == paths[1:]
    text = (tmp_path / "checkpoint").read_text()
    assert text.splitlines()[0] == 'model_checkpoint_path: "model.ckpt-3"'
    sess.run(sl.assign(w, 0.0))
    saver.restore(sess, sl.train.latest_checkpoint(str(tmp_path)))
    assert sess.run(w) == 4.0
    (tmp_path / "checkpoint").write_text("model_checkpoint_path model.ckpt-3\n")
    with pytest.raises(ValueError, match=r"checkpoint:1: expected"):
        sl.train.latest_checkpoint(str(tmp_path))


def test_replica_device_setter_places_variables_by_bytes(graph):
    setter = sl.train.replica_device_setter(ps_tasks=2, worker_device="/job:worker/task:1")
    with sl.device(setter):
        w1 = sl.Variable(np.zeros((2, 2), np.float32), name="w1")
        w2 = sl.get_variable("w2", [2])
        w3 = sl.Variable(np.float32(0), name="w3")
        y = sl.matmul(sl.placeholder(sl.float32, [None, 2]), w1)
        with sl.device("/job:worker/task:0"):  # An inner request wins.
            z = y + 1.0
        train = sl.train.GradientDescentOptimizer(0.1).minimize(sl.reduce_sum(z))
    # 16 bytes to task 0, then 8 and 4 to task 1, which holds fewer bytes.
    assert [v.op.device for v in (w1, w2, w3)] == [
        "/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:1"]
    assert y.op.device == "/job:worker/task:1" and z.op.device == "/job:worker/task:0"
    updates = [op for op in graph.get_operations() if op.type.startswith("Apply")]
    assert updates and all(op.device == "/job:ps/task:0" for op in updates)  # w1's task
    assert setter.describe() == ("/job:ps/task:0: 16 bytes in 1 variable(s): w1 (16)\n"
                                 "/job:ps/task:1: 12 bytes in 2 variable(s): w2 (8), w3 (4)")
    assert sl.train.replica_device_setter(cluster={"worker": ["h:1"]}) is None
    by_cluster = sl.train.replica_device_setter(cluster={"ps": ["h:1", "h:2", "h:3"],
                                                         "worker": ["h:4"]})
    with sl.device(by_cluster):
        assert [sl.Variable(0.0).op.device for _ in range(4)] == [
            "/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:2", "/job:ps/task:0"]
    del train


def test_replica_device_setter_balances_bytes_where_round_robin_would_not(graph):
    setter = sl.train.replica_device_setter(ps_tasks=2)
    with sl.device(setter):
        for i, n in enumerate([1000, 12, 1000, 12]):  # Round robin: 2000 and 24 bytes.
            sl.Variable(np.zeros(n // 4, np.float32), name="v%d" % i)
    loads = {}
    for name, device, nbytes in setter.placement():
        loads[device] = loads.get(device, 0) + nbytes
    assert loads == {"/job:ps/task:0": 1012, "/job:ps/task:1": 1012}
    counts = sl.train.replica_device_setter(
        ps_tasks=2, ps_strategy=sl.train.GreedyLoadBalancingStrategy(2, lambda op: 1))
    with sl.device(counts):  # Balancing variable counts instead: round robin.
        assert [sl.Variable(np.zeros(n, np.float32)).op.device for n in (100, 1, 100)] == [
            "/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0"]
