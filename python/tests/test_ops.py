"""Every foundation op, run through a Session and checked against numpy."""

import numpy as np
import pytest

import sluice as sl

RNG = np.random.default_rng(7)


def _rand(shape, dtype=np.float32, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("fn,ref", [
    (sl.add, np.add), (sl.subtract, np.subtract), (sl.multiply, np.multiply),
    (sl.maximum, np.maximum), (sl.minimum, np.minimum),
])
def test_binary_ops_broadcast_like_numpy(graph, sess, fn, ref, dtype):
    a = (_rand((2, 3)) * 10).astype(dtype)
    b = (_rand((3,)) * 10).astype(dtype)
    c = (_rand((2, 1)) * 10).astype(dtype)
    x = sl.placeholder(dtype, shape=[None, 3])
    out = sess.run([fn(x, b), fn(c, x)], feed_dict={x: a})
    np.testing.assert_array_equal(out[0], ref(a, b))
    np.testing.assert_array_equal(out[1], ref(c, a))
    assert out[0].dtype == dtype


def test_division(graph, sess):
    a, b = _rand((3, 4), np.float64), _rand((4,), np.float64, 1.0, 2.0)
    f = sl.divide(a, b)
    g = sl.placeholder(sl.float32) / 4  # The literal becomes a float32 4.
    np.testing.assert_allclose(sess.run(f), a / b, rtol=1e-15)
    np.testing.assert_array_equal(sess.run(g, {g.op.inputs[0]: [1.0, 2.0]}), [0.25, 0.5])


@pytest.mark.parametrize("fn,ref,low", [
    (sl.negative, np.negative, -3), (sl.exp, np.exp, -3), (sl.log, np.log, 0.1),
    (sl.square, np.square, -3), (sl.sqrt, np.sqrt, 0.0),
    (sl.sigmoid, lambda v: 1 / (1 + np.exp(-v)), -5),
    (sl.tanh, np.tanh, -3), (sl.nn.relu, lambda v: np.maximum(v, 0), -3),
])
def test_unary_ops(graph, sess, fn, ref, low):
    a = _rand((3, 5), np.float64, low, 3.0)
    f = _rand((7,), np.float32, low, 3.0)
    out64, out32 = sess.run([fn(a), fn(f)])
    np.testing.assert_allclose(out64, ref(a), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out32, ref(f.astype(np.float64)), rtol=2e-6, atol=1e-7)
    assert out32.dtype == np.float32


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(graph, sess, ta, tb):
    a, b = _rand((5, 7), np.float64), _rand((7, 3), np.float64)
    a_in = a.T.copy() if ta else a
    b_in = b.T.copy() if tb else b
    out = sess.run(sl.matmul(a_in, b_in, transpose_a=ta, transpose_b=tb))
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


@pytest.mark.parametrize("fn,ref", [
    (sl.reduce_sum, np.sum), (sl.reduce_mean, np.mean), (sl.reduce_max, np.max),
])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, [0, 2], []])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(graph, sess, fn, ref, axis, keepdims):
    a = _rand((2, 3, 4), np.float64)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    out = sess.run(fn(a, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(out, ref(a, axis=np_axis, keepdims=keepdims), rtol=1e-12)


def test_reduce_all_of_unknown_rank(graph, sess):
    x = sl.placeholder(sl.float32)
    a = _rand((3, 2, 2))
    np.testing.assert_allclose(sess.run(sl.reduce_sum(x), {x: a}), a.sum(), rtol=1e-5)


def test_array_ops(graph, sess):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    parts = sl.split(a, 2, axis=2)
    out = sess.run({
        "reshape": sl.reshape(a, [4, -1]),
        "transpose": sl.transpose(a, [2, 0, 1]),
        "reverse": sl.transpose(a),
        "concat": sl.concat([a, a * 2], axis=-1),
        "split": parts,
        "slice": sl.slice(a, [0, 1, 1], [-1, 2, 2]),
        "cast": sl.cast(a - 11.5, sl.int32),
        "bool": sl.cast(a, sl.bool),
        "fill": sl.fill([2, 2], 7.0),
        "zeros": sl.zeros([3], sl.int64),
        "ones": sl.ones([2, 1]),
        "zeros_like": sl.zeros_like(a),
        "ones_like": sl.ones_like(a, dtype=sl.int32),
        "identity": sl.identity(a),
    })
    np.testing.assert_array_equal(out["reshape"], a.reshape(4, -1))
    np.testing.assert_array_equal(out["transpose"], a.transpose(2, 0, 1))
    np.testing.assert_array_equal(out["reverse"], a.T)
    np.testing.assert_array_equal(out["concat"], np.concatenate([a, a * 2], axis=-1))
    for got, want in zip(out["split"], np.split(a, 2, axis=2)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out["slice"], a[0:, 1:3, 1:3])
    np.testing.assert_array_equal(out["cast"], np.trunc(a - 11.5).astype(np.int32))
    np.testing.assert_array_equal(out["bool"], a != 0)
    np.testing.assert_array_equal(out["fill"], np.full((2, 2), 7.0, np.float32))
    assert out["zeros"].dtype == np.int64 and not out["zeros"].any()
    np.testing.assert_array_equal(out["ones"], np.ones((2, 1), np.float32))
    np.testing.assert_array_equal(out["zeros_like"], np.zeros_like(a))
    np.testing.assert_array_equal(out["ones_like"], np.ones(a.shape, np.int32))
    np.testing.assert_array_equal(out["identity"], a)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax_family(graph, sess):
    z = _rand((4, 5), np.float64, -5, 5)
    z[0] += 1000.0  # Large logits stay finite.
    out = sess.run([sl.nn.softmax(z), sl.nn.log_softmax(z)])
    np.testing.assert_allclose(out[0], _softmax(z), rtol=1e-12)
    np.testing.assert_allclose(out[1], np.log(_softmax(z)), rtol=1e-12)


def test_cross_entropy_losses(graph, sess):
    logits = _rand((4, 3), np.float64, -3, 3)
    labels = np.array([0, 2, 1, 2])
    onehot = np.eye(3)[labels]
    probs = _softmax(_rand((4, 3), np.float64))
    dense = sl.nn.softmax_cross_entropy_with_logits(labels=probs, logits=logits)
    sparse = sl.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    sparse32 = sl.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels.astype(np.int32), logits=logits)
    out = sess.run([dense, sparse, sparse32])
    log_p = np.log(_softmax(logits))
    np.testing.assert_allclose(out[0], -(probs * log_p).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(out[1], -(onehot * log_p).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(out[2], out[1], rtol=0)
    assert dense.shape == (4,)


def test_random_ops_statistics_and_seeds(graph):
    n = sl.random_normal([200, 100], seed=3)
    scaled = sl.random_normal([20000], mean=5.0, stddev=0.5, seed=4, dtype=sl.float64)
    u = sl.random_uniform([20000], minval=-1.0, maxval=3.0, seed=5)
    with sl.Session(graph=graph) as s1:
        a1, b, c = s1.run([n, scaled, u])
        a2 = s1.run([n, scaled, u])[0]
    with sl.Session(graph=graph) as s2:
        a3 = s2.run([n, scaled, u])[0]
    assert a1.dtype == np.float32 and b.dtype == np.float64
    assert abs(a1.mean()) < 0.02 and abs(a1.std() - 1.0) < 0.02
    assert abs(b.mean() - 5.0) < 0.02 and abs(b.std() - 0.5) < 0.02
    assert c.min() >= -1.0 and c.max() < 3.0 and abs(c.mean() - 1.0) < 0.05
    assert not np.array_equal(a1, a2)  # Each run continues the stream...
    np.testing.assert_array_equal(a1, a3)  # ...and a fresh session repeats it.


def test_variables_assign_ops(graph, sess):
    v = sl.Variable([1.0, 2.0, 3.0], name="v")
    assert v.op.name == "v" and v.initializer.name == "v/Initializer"
    assert v.initial_value.op.name == "v/initial_value"
    add = v.assign_add([1.0, 1.0, 1.0])
    sub = sl.assign_sub(v, [0.5, 0.5, 0.5])
    put = v.assign(np.array([9.0, 8.0, 7.0], np.float32))
    doubled = v * 2
    sess.run(v.initializer)
    np.testing.assert_array_equal(sess.run([v, v.initial_value]), [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(sess.run(add), [2, 3, 4])
    np.testing.assert_array_equal(sess.run(sub), [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(sess.run(put), [9, 8, 7])
    np.testing.assert_array_equal(sess.run(doubled), [18, 16, 14])
