"""Gradients against numpy finite differences; optimizers; training loops that converge."""

import numpy as np
import pytest

import sluice as sl

RNG = np.random.default_rng(11)


def _numpy_mlp_loss(x, labels, w1, b1, w2):
    """The model of _build_mlp in numpy, float64: mean sparse softmax cross-entropy."""
    z = np.tanh(x @ w1 + b1)
    logits = np.maximum(z, 0.1 * z) @ w2  # A leaky ReLU made of Maximum and Mul.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


def _finite_difference(f, params, index, eps=1e-6):
    """Central differences of the scalar f(*params) with respect to params[index]."""
    grad = np.zeros_like(params[index])
    for i in np.ndindex(grad.shape):
        plus = [p.copy() for p in params]
        minus = [p.copy() for p in params]
        plus[index][i] += eps
        minus[index][i] -= eps
        grad[i] = (f(*plus) - f(*minus)) / (2 * eps)
    return grad


def _build_mlp(x, labels, w1, b1, w2):
    z = sl.tanh(sl.matmul(x, w1) + b1)
    logits = sl.matmul(sl.maximum(z, 0.1 * z), w2)
    return sl.reduce_mean(
        sl.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def test_gradients_match_numpy_finite_differences(graph, sess):
    x = RNG.normal(size=(6, 4))
    labels = RNG.integers(0, 3, size=6)
    params = [RNG.normal(size=(4, 5)), RNG.normal(size=(5,)), RNG.normal(size=(5, 3))]
    tensors = [sl.placeholder(sl.float64, shape=p.shape) for p in params]
    loss = _build_mlp(x, labels, *tensors)
    grads = sl.gradients(loss, tensors)
    feed = dict(zip(tensors, params))
    loss_value, grad_values = sess.run([loss, grads], feed_dict=feed)
    f = lambda *p: _numpy_mlp_loss(x, labels, *p)  # noqa: E731
    np.testing.assert_allclose(loss_value, f(*params), rtol=1e-12)
    for i, g in enumerate(grad_values):
        assert g.shape == params[i].shape
        np.testing.assert_allclose(g, _finite_difference(f, params, i), rtol=1e-6, atol=1e-8)


def test_gradients_of_broadcasting_reductions_and_softmax(graph, sess):
    a = RNG.normal(size=(3, 4))
    b = RNG.normal(size=(4,))
    ta, tb = sl.placeholder(sl.float64, [3, 4]), sl.placeholder(sl.float64, [4])
    y = sl.reduce_sum(sl.nn.softmax(ta * tb - tb) * sl.exp(ta / 3.0), axis=0)
    ga, gb = sess.run(sl.gradients(y, [ta, tb]), {ta: a, tb: b})

    def f(a, b):
        z = a * b - b
        s = np.exp(z - z.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        return (s * np.exp(a / 3.0)).sum(axis=0).sum()  # gradients() sums the ys' elements.

    np.testing.assert_allclose(ga, _finite_difference(f, [a, b], 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gb, _finite_difference(f, [a, b], 1), rtol=1e-6, atol=1e-9)


def test_gradients_with_grad_ys_and_unconnected(graph, sess):
    x = sl.placeholder(sl.float64, [2])
    other = sl.placeholder(sl.float64, [2])
    y = sl.square(x)
    gx, gother = sl.gradients(y, [x, other], grad_ys=[sl.constant([1.0, 10.0], sl.float64)])
    assert gother is None
    np.testing.assert_allclose(sess.run(gx, {x: [3.0, 4.0]}), [6.0, 80.0])


def test_gradients_with_respect_to_variables(graph, sess):
    w = sl.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), name="w")
    x = np.array([[1.0, -1.0]])
    loss = sl.reduce_sum(sl.square(sl.matmul(x, w)))
    (gw,) = sl.gradients(loss, [w])
    sess.run(sl.global_variables_initializer())
    # d/dw sum((x w)^2) = 2 x^T (x w)
    np.testing.assert_allclose(sess.run(gw), 2 * x.T @ (x @ w.initial_value.eval(session=sess)))


def test_missing_gradient_is_an_error_naming_the_op():
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [2], name="x")
        (dx,) = sl.gradients(sl.reduce_sum(sl.nn.relu(x)), [x])
        # Second derivatives are not supported: ReluGrad has no gradient function.
        with pytest.raises(sl.errors.OpError) as info:
            sl.gradients(sl.reduce_sum(dx * x), [x])
        assert info.value.op_type == "ReluGrad", str(info.value)
        with pytest.raises(sl.errors.FailedPreconditionError, match="build a new graph"):
            sl.gradients(sl.reduce_sum(x), [x])
        sl.add(x, 1.0)  # Plain ops still build.


def _toy_problem():
    """Two well separated Gaussian blobs per class, three classes in 2-D."""
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = np.repeat(np.arange(3), 30)
    x = (centers[labels] + 0.3 * RNG.normal(size=(90, 2))).astype(np.float32)
    return x, labels


@pytest.mark.parametrize("make_optimizer", [
    lambda: sl.train.GradientDescentOptimizer(0.5),
    lambda: sl.train.MomentumOptimizer(0.1, momentum=0.9),
    lambda: sl.train.MomentumOptimizer(0.1, momentum=0.9, use_nesterov=True),
    lambda: sl.train.AdagradOptimizer(0.5),
    lambda: sl.train.AdamOptimizer(0.05),
], ids=["sgd", "momentum", "nesterov", "adagrad", "adam"])
def test_training_converges(graph, make_optimizer):
    xs, ys = _toy_problem()
    x = sl.placeholder(sl.float32, [None, 2], name="x")
    y = sl.placeholder(sl.int64, [None], name="y")
    w1 = sl.Variable(sl.random_normal([2, 8], stddev=0.5, seed=1), name="w1")
    b1 = sl.Variable(sl.zeros([8]), name="b1")
    w2 = sl.Variable(sl.random_normal([8, 3], stddev=0.5, seed=2), name="w2")
    logits = sl.matmul(sl.tanh(sl.matmul(x, w1) + b1), w2)
    loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    opt = make_optimizer()
    train_op = opt.minimize(loss)
    init = sl.global_variables_initializer()  # After minimize: slots included.
    assert [v.op.name for v in sl.trainable_variables()] == ["w1", "b1", "w2"]
    slots = {v.op.name for v in opt.variables()}
    assert slots <= {v.op.name for v in sl.global_variables()}
    assert not any(v.trainable for v in opt.variables())
    with sl.Session(graph=graph) as sess:
        sess.run(init)
        losses = [sess.run([train_op, loss], {x: xs, y: ys})[1] for _ in range(150)]
        predictions = sess.run(logits, {x: xs}).argmax(axis=1)
    assert losses[-1] < 0.1 * losses[0], losses[::15]
    assert (predictions == ys).mean() > 0.95


def test_compute_and_apply_gradients(graph, sess):
    w = sl.Variable(np.array([1.0, -2.0], np.float32), name="w")
    unused = sl.Variable(np.array([5.0], np.float32), name="unused")
    loss = sl.reduce_sum(sl.square(w))
    opt = sl.train.GradientDescentOptimizer(0.25)
    grads_and_vars = opt.compute_gradients(loss, [w, unused])
    assert grads_and_vars[1][0] is None and grads_and_vars[0][1] == w
    step = opt.apply_gradients(grads_and_vars, name="step")
    assert step.name == "step"
    sess.run(sl.global_variables_initializer())
    sess.run(step)
    np.testing.assert_allclose(sess.run(w), [0.5, -1.0])  # w - 0.25 * 2w
    np.testing.assert_allclose(sess.run(unused), [5.0])


def test_minimize_without_a_dependent_variable_is_an_error(graph):
    sl.Variable(1.0, name="w")
    loss = sl.reduce_sum(sl.constant([1.0, 2.0]))
    with pytest.raises(sl.errors.InvalidArgumentError, match="no gradient for any variable"):
        sl.train.GradientDescentOptimizer(0.1).minimize(loss)
