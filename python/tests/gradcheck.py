"""Gradient checking for the op tests: the backward graph against central finite differences
of the forward graph, both run by a Session, in float64."""

import numpy as np

import sluice as sl


def gradient_error(sess, build, values, eps=1e-6, seed=3):
    """The largest difference between sl.gradients and finite differences.

    `build(*placeholders)` returns the output y; the checked scalar is sum(y * r) for a fixed
    random r, so every element of y counts with its own weight. `values` are float64 arrays,
    one per placeholder.
    """
    xs = [sl.placeholder(sl.float64, shape=np.shape(v)) for v in values]
    y = build(*xs)
    r = np.random.default_rng(seed).uniform(0.5, 1.5, size=sess.run(
        y, dict(zip(xs, values))).shape)
    scalar = sl.reduce_sum(y * r)
    grads = sl.gradients(scalar, xs)
    feed = dict(zip(xs, values))
    symbolic = sess.run([g if g is not None else sl.zeros_like(x) for g, x in zip(grads, xs)],
                        feed)
    worst = 0.0
    for k, value in enumerate(values):
        numeric = np.zeros_like(value, dtype=np.float64)
        for i in np.ndindex(np.shape(value)):
            plus = [np.array(v, dtype=np.float64, copy=True) for v in values]
            minus = [np.array(v, dtype=np.float64, copy=True) for v in values]
            plus[k][i] += eps
            minus[k][i] -= eps
            f_plus = sess.run(scalar, dict(zip(xs, plus)))
            f_minus = sess.run(scalar, dict(zip(xs, minus)))
            numeric[i] = (f_plus - f_minus) / (2 * eps)
        worst = max(worst, float(np.max(np.abs(numeric - symbolic[k]), initial=0.0)))
    return worst
