"""conv2d and pooling against direct numpy loops (SAME/VALID, strides, dilations) with
gradients against finite differences; dropout, moments, batch normalization, the sigmoid loss,
bias_add and l2_loss against numpy; the shape ops (shape, size, rank, expand_dims, squeeze,
stack, unstack)."""

import numpy as np
import pytest

import sluice as sl
from gradcheck import gradient_error

RNG = np.random.default_rng(23)


def _out_size(n, k, stride, dilation, padding):
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        out = -(-n // stride)
        return out, max((out - 1) * stride + eff - n, 0) // 2
    return (n - eff) // stride + 1, 0


def _conv_ref(x, w, strides, padding, dilations=(1, 1)):
    """Cross-correlation by its definition, one output element at a time."""
    n, h, wd, c = x.shape
    kh, kw, _, oc = w.shape
    oh, pt = _out_size(h, kh, strides[0], dilations[0], padding)
    ow, pl = _out_size(wd, kw, strides[1], dilations[1], padding)
    out = np.zeros((n, oh, ow, oc))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    y = i * strides[0] - pt + a * dilations[0]
                    z = j * strides[1] - pl + b * dilations[1]
                    if 0 <= y < h and 0 <= z < wd:
                        out[:, i, j, :] += x[:, y, z, :] @ w[a, b]
    return out


def _pool_ref(x, k, strides, padding, reduce):
    n, h, wd, c = x.shape
    oh, pt = _out_size(h, k[0], strides[0], 1, padding)
    ow, pl = _out_size(wd, k[1], strides[1], 1, padding)
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            y0, z0 = i * strides[0] - pt, j * strides[1] - pl
            window = x[:, max(y0, 0):y0 + k[0], max(z0, 0):z0 + k[1], :]
            out[:, i, j, :] = reduce(window.reshape(n, -1, c), axis=1)
    return out


@pytest.mark.parametrize("shape,kernel,strides,padding,dilations", [
    ((2, 5, 6, 3), (3, 3, 3, 4), (1, 1), "SAME", (1, 1)),
    ((2, 5, 6, 3), (3, 2, 3, 2), (2, 2), "SAME", (1, 1)),
    ((1, 7, 7, 2), (3, 3, 2, 3), (2, 3), "VALID", (1, 1)),
    ((1, 7, 8, 2), (2, 3, 2, 2), (1, 1), "SAME", (2, 2)),
    ((3, 4, 4, 1), (4, 4, 1, 5), (1, 1), "VALID", (1, 1)),
])
def test_conv2d_matches_the_definition(graph, sess, shape, kernel, strides, padding, dilations):
    x = RNG.normal(size=shape)
    w = RNG.normal(size=kernel)
    got = sess.run(sl.nn.conv2d(x, w, strides=[1, *strides, 1], padding=padding,
                                dilations=[1, *dilations, 1]))
    np.testing.assert_allclose(got, _conv_ref(x, w, strides, padding, dilations), atol=1e-12)
    got32 = sess.run(sl.nn.conv2d(x.astype(np.float32), w.astype(np.float32),
                                  strides=list(strides), padding=padding,
                                  dilations=list(dilations)))
    np.testing.assert_allclose(got32, _conv_ref(x, w, strides, padding, dilations), atol=1e-4)


@pytest.mark.parametrize("strides,padding,dilations", [
    ((1, 1), "SAME", (1, 1)), ((2, 2), "SAME", (1, 1)), ((2, 1), "VALID", (1, 1)),
    ((1, 1), "SAME", (2, 1)),
])
def test_conv2d_gradients(graph, sess, strides, padding, dilations):
    x = RNG.normal(size=(2, 5, 4, 2))
    w = RNG.normal(size=(3, 2, 2, 3))
    err = gradient_error(sess, lambda a, b: sl.nn.conv2d(
        a, b, strides=list(strides), padding=padding, dilations=list(dilations)), [x, w])
    assert err < 1e-6


@pytest.mark.parametrize("k,strides,padding", [((2, 2), (2, 2), "SAME"), ((3, 3), (2, 2), "SAME"),
                                               ((3, 2), (1, 2), "VALID")])
def test_pooling_matches_the_definition(graph, sess, k, strides, padding):
    x = RNG.normal(size=(2, 5, 7, 3))
    mx, av = sess.run([sl.nn.max_pool(x, ksize=[1, *k, 1], strides=[1, *strides, 1],
                                      padding=padding),
                       sl.nn.avg_pool(x, ksize=list(k), strides=list(strides), padding=padding)])
    np.testing.assert_allclose(mx, _pool_ref(x, k, strides, padding, np.max), atol=1e-15)
    np.testing.assert_allclose(av, _pool_ref(x, k, strides, padding, np.mean), atol=1e-15)


@pytest.mark.parametrize("pool", [sl.nn.max_pool, sl.nn.avg_pool])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_pooling_gradients(graph, sess, pool, padding):
    x = RNG.permutation(2 * 5 * 5 * 2).reshape(2, 5, 5, 2) / 10.0  # No ties: max is smooth.
    err = gradient_error(sess, lambda a: pool(a, ksize=3, strides=2, padding=padding), [x])
    assert err < 1e-6


def test_conv_and_pool_errors_name_the_problem(graph, sess):
    x = sl.placeholder(sl.float32, shape=[None, 8, 8, 3])
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"input depth 3 differs from the filter's in_channels 4"):
        sl.nn.conv2d(x, np.zeros((3, 3, 4, 2), np.float32), strides=1, padding="SAME")
    with pytest.raises(sl.errors.InvalidArgumentError, match="padding must be"):
        sl.nn.conv2d(x, np.zeros((3, 3, 3, 2), np.float32), strides=1, padding="FULL")
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"strides must be \[1, h, w, 1\].*got \[2, 1, 1, 1\]"):
        sl.nn.conv2d(x, np.zeros((3, 3, 3, 2), np.float32), strides=[2, 1, 1, 1],
                     padding="SAME")
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"the height window \(9 with dilation\) is larger than the "
                             r"input's 8 \(padding VALID\)"):
        sl.nn.max_pool(x, ksize=9, strides=1, padding="VALID")
    with pytest.raises(ValueError, match="only data_format='NHWC'"):
        sl.nn.conv2d(x, np.zeros((3, 3, 3, 2), np.float32), strides=1, padding="SAME",
                     data_format="NCHW")
    # Known only when it runs: the kernel says the same.
    y = sl.placeholder(sl.float32)
    conv = sl.nn.conv2d(y, np.zeros((3, 3, 4, 2), np.float32), strides=1, padding="SAME")
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"Conv2D: input depth 3 differs from the filter's in_channels 4"):
        sess.run(conv, {y: np.zeros((1, 8, 8, 3), np.float32)})


def test_conv2d_shapes_are_inferred(graph):
    x = sl.placeholder(sl.float32, shape=[None, 28, 28, 1])
    h = sl.nn.conv2d(x, np.zeros((5, 5, 1, 32), np.float32), strides=[1, 1, 1, 1],
                     padding="SAME")
    p = sl.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    v = sl.nn.conv2d(p, np.zeros((5, 5, 32, 8), np.float32), strides=2, padding="VALID")
    assert h.shape == (None, 28, 28, 32)
    assert p.shape == (None, 14, 14, 32)
    assert v.shape == (None, 5, 5, 8)


def test_dropout_keeps_the_expected_fraction_and_scales(graph, sess):
    x = np.ones((200, 100), np.float32)
    keep = sl.placeholder(sl.float32)
    d = sl.nn.dropout(x, keep_prob=keep, seed=5)
    out = sess.run(d, {keep: 0.25})
    assert set(np.unique(out)) <= {0.0, 4.0}
    assert abs((out > 0).mean() - 0.25) < 0.02  # 20,000 draws: sd 0.003.
    np.testing.assert_array_equal(sess.run(d, {keep: 1.0}), x)
    same = sl.nn.dropout(x, rate=0.5, seed=9)
    with sl.Session(graph=graph) as s1, sl.Session(graph=graph) as s2:
        np.testing.assert_array_equal(s1.run(same), s2.run(same))  # Seeded: reproducible.
    with pytest.raises(ValueError, match="exactly one of keep_prob= and rate="):
        sl.nn.dropout(x)
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
        sl.nn.dropout(x, keep_prob=0.0)


def test_moments_batch_norm_sigmoid_loss_bias_add_l2_loss(graph, sess):
    x = RNG.normal(size=(6, 4))
    mean, var = sess.run(sl.nn.moments(x, axes=[0]))
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-13)
    scale, offset = RNG.normal(size=4), RNG.normal(size=4)
    bn = sess.run(sl.nn.batch_normalization(x, mean, var, offset, scale, 1e-3))
    np.testing.assert_allclose(bn, (x - mean) / np.sqrt(var + 1e-3) * scale + offset,
                               rtol=1e-12)
    labels = RNG.uniform(size=(6, 4))
    logits = x * 30  # Large magnitudes: the stable form stays finite.
    loss = sess.run(sl.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    # -z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x)), each log in numpy's stable form.
    ref = labels * np.logaddexp(0, -logits) + (1 - labels) * np.logaddexp(0, logits)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    with pytest.raises(ValueError, match="named arguments"):
        sl.nn.sigmoid_cross_entropy_with_logits(labels, logits)
    b = RNG.normal(size=4)
    np.testing.assert_allclose(sess.run(sl.nn.bias_add(x, b)), x + b)
    with pytest.raises(ValueError, match="does not match the last dimension"):
        sl.nn.bias_add(x, np.ones(3))
    assert np.isclose(sess.run(sl.nn.l2_loss(x)), (x ** 2).sum() / 2)
    w = RNG.normal(size=(4, 2))
    np.testing.assert_allclose(sess.run(sl.nn.xw_plus_b(x, w, [1.0, 2.0])), x @ w + [1, 2])


def test_moments_and_batch_norm_gradients(graph, sess):
    x = RNG.normal(size=(5, 3))

    def build(a):
        m, v = sl.nn.moments(a, axes=[0])
        return sl.nn.batch_normalization(a, m, v, None, None, 1e-3)

    assert gradient_error(sess, build, [x]) < 1e-6


def test_shape_ops(graph, sess):
    x = sl.placeholder(sl.float32, shape=[None, 3, None])
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    feed = {x: v}
    s, n, r = sess.run([sl.shape(x), sl.size(x), sl.rank(x)], feed)
    np.testing.assert_array_equal(s, [2, 3, 4])
    assert n == 24 and r == 3 and s.dtype == np.int32
    e0, e_last, sq, st, st1 = sess.run([
        sl.expand_dims(x, 0), sl.expand_dims(x, -1), sl.squeeze(sl.expand_dims(x, 1), [1]),
        sl.stack([x, x + 1]), sl.stack([v[0], v[1]], axis=1)], feed)
    np.testing.assert_array_equal(e0, v[None])
    np.testing.assert_array_equal(e_last, v[..., None])
    np.testing.assert_array_equal(sq, v)
    np.testing.assert_array_equal(st, np.stack([v, v + 1]))
    np.testing.assert_array_equal(st1, np.stack([v[0], v[1]], axis=1))
    parts = sess.run(sl.unstack(sl.constant(v), axis=1))
    assert len(parts) == 3
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(p, v[:, i])
    np.testing.assert_array_equal(sess.run(sl.squeeze(np.zeros((1, 2, 1)))), np.zeros(2))
    with pytest.raises(ValueError, match="cannot squeeze dimension 1"):
        sl.squeeze(np.zeros((1, 2, 1)), axis=[1])
    (g,) = sl.gradients(sl.reduce_sum(sl.stack([x, 2 * x])), [x])
    np.testing.assert_array_equal(sess.run(g, feed), np.full(v.shape, 3.0))


def test_truncated_normal_stays_within_two_standard_deviations(graph):
    t = sl.truncated_normal([100, 100], mean=1.0, stddev=0.5, seed=3, dtype=sl.float64)
    t32 = sl.truncated_normal([1001], seed=4)
    with sl.Session(graph=graph) as s1, sl.Session(graph=graph) as s2:
        a, a32 = s1.run([t, t32])
        np.testing.assert_array_equal(a, s2.run(t))  # Seeded: reproducible.
    assert a.min() >= 0.0 and a.max() <= 2.0
    assert np.abs(a32).max() <= 2.0 and a32.dtype == np.float32
    # The standard normal truncated to [-2, 2] has standard deviation 0.8796 (its variance is
    # 1 - 4 phi(2) / (2 Phi(2) - 1)); 10,000 draws estimate it within about 0.007.
    assert abs(a.mean() - 1.0) < 0.02
    assert abs(a.std() / 0.5 - 0.8796) < 0.03
