"""TensorFlow 1 names and behaviours a TF1 program relies on (issue: a TF1 program runs with
only its import changed): feed conversion, dtype names, the cross entropies' keyword-only rule,
reduction aliases, InteractiveSession. Reference values come from numpy."""

import numpy as np
import pytest

import sluice as sl


def test_feeds_convert_to_the_placeholders_dtype(graph, sess):
    images = sl.placeholder(sl.float32, shape=[None, 4], name="images")
    labels = sl.placeholder(sl.int64, shape=[None], name="labels")
    flags = sl.placeholder(sl.bool, shape=[2], name="flags")
    pixels = np.array([[0, 128, 255, 7]], dtype=np.uint8)  # MNIST-style uint8 images
    out = sess.run([images * 1.0, labels, flags],
                   {images: pixels, labels: np.array([3.0, 1.0]), flags: [1, 0]})
    assert out[0].dtype == np.float32 and out[1].dtype == np.int64 and out[2].dtype == np.bool_
    np.testing.assert_array_equal(out[0], pixels.astype(np.float32))
    np.testing.assert_array_equal(out[1], [3, 1])
    np.testing.assert_array_equal(out[2], [True, False])
    # Python lists and scalars, the way numpy converts them.
    np.testing.assert_array_equal(sess.run(labels, {labels: [1, 2, 3]}), [1, 2, 3])
    np.testing.assert_allclose(sess.run(images, {images: [[0.5, 1, 2, 3]]}), [[0.5, 1, 2, 3]])


def test_feeds_that_cannot_be_converted_are_refused_naming_the_placeholder(graph, sess):
    x = sl.placeholder(sl.float32, shape=[None], name="x")
    n = sl.placeholder(sl.int32, shape=[None], name="n")
    with pytest.raises(TypeError, match=r"feed for 'x:0' \(float32\): cannot convert 'abc' "
                                        r"\(numpy dtype <U3\) to float32"):
        sess.run(x, {x: ["abc"]})
    with pytest.raises(ValueError, match=r"feed for 'n:0' \(int32\): values from 1 to "
                                         r"4294967296 do not fit in int32 \(\[-2147483648, "
                                         r"2147483647\]\)"):
        sess.run(n, {n: np.array([1, 2 ** 32], dtype=np.int64)})
    with pytest.raises(ValueError, match=r"feed for 'n:0' \(int32\): a non-finite value cannot "
                                         r"be converted to int32"):
        sess.run(n, {n: np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match=r"feed for 'x:0' \(float32\): cannot make an array"):
        sess.run(x, {x: [[1.0], [2.0, 3.0]]})
    np.testing.assert_array_equal(sess.run(n, {n: np.array([-2.0 ** 31, 7.9])}),
                                  [-2 ** 31, 7])  # In range: truncated, as numpy does.


def test_tensorflow_dtype_names(graph):
    assert sl.as_dtype("float") == sl.float32
    assert sl.as_dtype("double") == sl.float64
    assert sl.as_dtype("float64") == sl.float64 and sl.as_dtype(np.float32) == sl.float32
    assert sl.placeholder("float", shape=[2]).dtype == sl.float32
    assert sl.cast(sl.constant([1, 2]), "float").dtype == sl.float32
    assert sl.cast(sl.constant([1, 2]), "double").dtype == sl.float64


def test_placeholder_shape_may_be_an_int(graph):
    assert tuple(sl.placeholder(sl.float32, shape=3).shape) == (3,)


def _np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_cross_entropies_take_named_arguments_only(graph, sess):
    logits_v = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], np.float32)
    labels_v = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], np.float32)
    logits, labels = sl.constant(logits_v), sl.constant(labels_v)
    # TensorFlow's rule since 1.0: f(y, y_) with the arguments swapped trained silently to a
    # wrong answer, so positional calls are refused.
    with pytest.raises(ValueError, match=r"Only call `softmax_cross_entropy_with_logits` with "
                                         r"named arguments \(labels=\.\.\., logits=\.\.\., "
                                         r"\.\.\.\), got 2 positional"):
        sl.nn.softmax_cross_entropy_with_logits(logits, labels)
    with pytest.raises(ValueError, match=r"Only call `sparse_softmax_cross_entropy_with_logits`"
                                         r" with named arguments"):
        sl.nn.sparse_softmax_cross_entropy_with_logits(sl.constant([0, 1]), logits)
    loss = sl.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits, dim=-1)
    sparse = sl.nn.sparse_softmax_cross_entropy_with_logits(labels=sl.constant([0, 1]),
                                                            logits=logits)
    expected = -(labels_v * _np_log_softmax(logits_v)).sum(axis=1)
    got, got_sparse = sess.run([loss, sparse])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got_sparse, -_np_log_softmax(logits_v)[[0, 1], [0, 1]],
                               rtol=1e-6)


def test_cross_entropy_backpropagates_into_logits_only(graph, sess):
    logits_v = np.array([[2.0, 1.0, 0.1]], np.float32)
    labels_v = np.array([[0.7, 0.2, 0.1]], np.float32)
    logits, labels = sl.constant(logits_v), sl.constant(labels_v)
    loss = sl.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    d_logits, d_labels = sl.gradients(loss, [logits, labels])
    assert d_labels is None  # TensorFlow 1: labels are constants of the loss.
    p = np.exp(_np_log_softmax(logits_v))
    np.testing.assert_allclose(sess.run(d_logits), p - labels_v, rtol=1e-5, atol=1e-7)


def test_reductions_take_tensorflow_1_argument_names(graph, sess):
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = sl.constant(v)
    got = sess.run([sl.reduce_sum(x, reduction_indices=1),
                    sl.reduce_mean(x, reduction_indices=[0], keep_dims=True),
                    sl.reduce_max(x, 1, keep_dims=True)])
    np.testing.assert_allclose(got[0], v.sum(axis=1))
    np.testing.assert_allclose(got[1], v.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(got[2], v.max(axis=1, keepdims=True))
    with pytest.raises(ValueError, match="pass axis= or reduction_indices=, not both"):
        sl.reduce_sum(x, axis=0, reduction_indices=0)
    with pytest.raises(ValueError, match="pass keepdims= or keep_dims=, not both"):
        sl.reduce_sum(x, keepdims=True, keep_dims=True)


def test_interactive_session_is_the_default_until_closed(graph):
    x = sl.constant([1.0, 2.0]) * 3.0
    v = sl.Variable(np.ones(2, np.float32))
    init = sl.initialize_all_variables()
    sess = sl.InteractiveSession(graph=graph)
    try:
        assert sl.get_default_session() is sess
        init.run()
        np.testing.assert_array_equal(x.eval(), [3.0, 6.0])
        np.testing.assert_array_equal(v.eval(), [1.0, 1.0])
    finally:
        sess.close()
    assert sl.get_default_session() is None


def test_losses_average_over_the_batch(graph, sess):
    logits_v = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], np.float32)
    onehot_v = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    pred_v = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    target_v = np.array([[1.5, 2.0], [2.0, 1.0]], np.float32)
    logits = sl.constant(logits_v)
    log_p = _np_log_softmax(logits_v)
    smoothed = onehot_v * 0.9 + 0.1 / 3
    got = sess.run([
        sl.losses.sparse_softmax_cross_entropy(labels=sl.constant([0, 2]), logits=logits),
        sl.losses.softmax_cross_entropy(sl.constant(onehot_v), logits, weights=2.0),
        sl.losses.softmax_cross_entropy(sl.constant(onehot_v), logits, label_smoothing=0.1),
        sl.losses.mean_squared_error(sl.constant(target_v), sl.constant(pred_v)),
    ])
    np.testing.assert_allclose(got[0], -(log_p[[0, 1], [0, 2]]).mean(), rtol=1e-6)
    np.testing.assert_allclose(got[1], 2.0 * -(onehot_v * log_p).sum(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(got[2], -(smoothed * log_p).sum(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(got[3], ((pred_v - target_v) ** 2).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"sl.losses.mean_squared_error: only a scalar Python "
                                         r"number is supported as weights"):
        sl.losses.mean_squared_error(sl.constant(target_v), sl.constant(pred_v),
                                     weights=sl.constant(target_v))
