"""Comparison, logic, select, rounding, power and modulo ops, the new reductions and ArgMax:
against numpy, with broadcasting, empty and bad inputs, and gradients against finite
differences."""

import numpy as np
import pytest

import sluice as sl
from gradcheck import gradient_error

RNG = np.random.default_rng(17)
NUMBER_TYPES = [np.float32, np.float64, np.int32, np.int64]


def _ints_and_halves(shape, dtype):
    """Values with many ties and exact halves, so comparisons and rounding meet edge cases."""
    return (RNG.integers(-6, 7, size=shape) / 2).astype(dtype)


@pytest.mark.parametrize("dtype", NUMBER_TYPES)
@pytest.mark.parametrize("fn,ref", [
    (sl.equal, np.equal), (sl.not_equal, np.not_equal), (sl.less, np.less),
    (sl.less_equal, np.less_equal), (sl.greater, np.greater),
    (sl.greater_equal, np.greater_equal),
])
def test_comparisons_broadcast_like_numpy(graph, sess, fn, ref, dtype):
    a = _ints_and_halves((4, 3), dtype)
    b = _ints_and_halves((3,), dtype)
    c = _ints_and_halves((4, 1), dtype)
    x = sl.placeholder(dtype, shape=[None, 3])
    same, row, col = sess.run([fn(x, a), fn(x, b), fn(c, x)], feed_dict={x: a[::-1].copy()})
    np.testing.assert_array_equal(same, ref(a[::-1], a))
    np.testing.assert_array_equal(row, ref(a[::-1], b))
    np.testing.assert_array_equal(col, ref(c, a[::-1]))
    assert row.dtype == np.bool_


def test_comparison_operators_and_bool_equality(graph, sess):
    a = _ints_and_halves((5, 4), np.float32)
    x = sl.constant(a)
    lt, le, gt, ge = sess.run([x < 0.5, x <= 0.5, x > 0.5, x >= 0.5])
    np.testing.assert_array_equal(lt, a < 0.5)
    np.testing.assert_array_equal(le, a <= 0.5)
    np.testing.assert_array_equal(gt, a > 0.5)
    np.testing.assert_array_equal(ge, a >= 0.5)
    p, q = RNG.integers(0, 2, size=(2, 6)).astype(bool)
    np.testing.assert_array_equal(sess.run(sl.equal(p, q)), p == q)
    # Python's == on tensors stays identity, as in TensorFlow 1.
    assert (x == x) is True


def test_logical_ops_and_operators(graph, sess):
    p = RNG.integers(0, 2, size=(3, 4)).astype(bool)
    q = RNG.integers(0, 2, size=(4,)).astype(bool)
    tp, tq = sl.constant(p), sl.constant(q)
    out = sess.run([sl.logical_and(tp, tq), sl.logical_or(tp, tq), sl.logical_not(tp),
                    sl.logical_xor(tp, tq), tp & tq, tp | q, ~tp, tp ^ tq, q & tp])
    want = [p & q, p | q, ~p, p ^ q, p & q, p | q, ~p, p ^ q, q & p]
    for got, ref in zip(out, want):
        np.testing.assert_array_equal(got, ref)
    all_, any_, all0, any1k = sess.run([sl.reduce_all(tp), sl.reduce_any(tp),
                                        sl.reduce_all(tp, axis=0),
                                        sl.reduce_any(tp, axis=1, keepdims=True)])
    assert all_ == p.all() and any_ == p.any()
    np.testing.assert_array_equal(all0, p.all(axis=0))
    np.testing.assert_array_equal(any1k, p.any(axis=1, keepdims=True))
    empty = np.zeros((0, 3), bool)
    np.testing.assert_array_equal(sess.run(sl.reduce_all(empty, axis=0)), [True] * 3)
    np.testing.assert_array_equal(sess.run(sl.reduce_any(empty, axis=0)), [False] * 3)


def test_logical_ops_refuse_numbers(graph):
    with pytest.raises(sl.errors.InvalidArgumentError, match="LogicalAnd"):
        sl.logical_and(sl.constant([1.0]), sl.constant([0.0]))


def test_where_selects_broadcasts_and_takes_row_conditions(graph, sess):
    x = RNG.normal(size=(3, 4))
    y = RNG.normal(size=(3, 4))
    c = x > y
    rows = np.array([True, False, True])
    same, bcast, by_row, scalar_y = sess.run([
        sl.where(c, x, y), sl.where(c[:1], x, y), sl.where(rows, x, y), sl.where(c, x, 0.0)])
    np.testing.assert_array_equal(same, np.where(c, x, y))
    np.testing.assert_array_equal(bcast, np.where(c[:1], x, y))
    np.testing.assert_array_equal(by_row, np.where(rows[:, None], x, y))
    np.testing.assert_array_equal(scalar_y, np.where(c, x, 0.0))
    ints = sess.run(sl.where([[True], [False]], [1, 2, 3], [[10], [20]]))
    np.testing.assert_array_equal(ints, [[1, 2, 3], [20, 20, 20]])
    with pytest.raises(ValueError, match="not supported"):
        sl.where(c)


def test_where_refuses_shapes_that_do_not_broadcast(graph):
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"\[2,3\] vs \[4\]"):
        sl.where(np.ones((2, 3), bool), np.ones(4), np.ones(4))


@pytest.mark.parametrize("fn,ref", [
    (sl.abs, np.abs), (sl.sign, np.sign), (sl.floor, np.floor), (sl.ceil, np.ceil),
    (sl.round, np.round), (sl.reciprocal, np.reciprocal),
    (sl.rsqrt, lambda v: 1 / np.sqrt(v)),
])
def test_unary_math_like_numpy(graph, sess, fn, ref):
    a = _ints_and_halves((6, 5), np.float64) + 0.25 * RNG.integers(0, 2, size=(6, 5))
    if fn in (sl.reciprocal, sl.rsqrt):
        a = np.abs(a) + 0.5
    out64, out32 = sess.run([fn(a), fn(a.astype(np.float32))])
    np.testing.assert_allclose(out64, ref(a), rtol=1e-15)
    np.testing.assert_allclose(out32, ref(a.astype(np.float32)), rtol=1e-6)
    assert out32.dtype == np.float32


def test_round_takes_halves_to_even_and_abs_sign_take_integers(graph, sess):
    np.testing.assert_array_equal(
        sess.run(sl.round([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])), [-2, -2, -0, 0, 2, 2])
    ints = np.array([-3, 0, 4], np.int64)
    np.testing.assert_array_equal(sess.run(sl.abs(ints)), [3, 0, 4])
    np.testing.assert_array_equal(sess.run(abs(sl.constant(ints))), [3, 0, 4])
    np.testing.assert_array_equal(sess.run(sl.sign(ints)), [-1, 0, 1])


@pytest.mark.parametrize("dtype", NUMBER_TYPES)
def test_floordiv_and_floormod_follow_python(graph, sess, dtype):
    a = np.array([[7, -7, 7, -7, 0, 6]], dtype)
    b = np.array([[2], [-2], [3]], dtype)
    x = sl.constant(a)
    div, mod, op_div, op_mod = sess.run([sl.floordiv(x, b), sl.mod(x, b), x // b, x % b])
    np.testing.assert_array_equal(div, np.floor_divide(a, b))
    np.testing.assert_array_equal(mod, np.mod(a, b))
    np.testing.assert_array_equal(op_div, np.floor_divide(a, b))
    np.testing.assert_array_equal(op_mod, np.mod(a, b))


def test_integer_division_by_zero_is_an_error_and_lowest_by_minus_one_wraps(graph, sess):
    x = sl.constant(np.array([5, 6], np.int32))
    for fn in (sl.floordiv, sl.floormod):
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match="integer division by zero: element 1 of the divisor is 0"):
            sess.run(fn(x, np.array([1, 0], np.int32)))
    low = np.iinfo(np.int64).min
    div, mod = sess.run([sl.floordiv(np.int64(low), np.int64(-1)),
                         sl.floormod(np.int64(low), np.int64(-1))])
    assert div == low and mod == 0
    # Floats follow IEEE: no error.
    assert np.isinf(sess.run(sl.floordiv(1.0, 0.0)))


def test_pow_and_its_operators(graph, sess):
    a = RNG.uniform(0.5, 2.0, size=(3, 4))
    e = RNG.uniform(-2.0, 2.0, size=(4,))
    x = sl.constant(a)
    out, sq, rpow = sess.run([sl.pow(x, e), x ** 2, 2.0 ** x])
    np.testing.assert_allclose(out, a ** e, rtol=1e-14)
    np.testing.assert_allclose(sq, a ** 2, rtol=1e-15)
    np.testing.assert_allclose(rpow, 2.0 ** a, rtol=1e-14)


@pytest.mark.parametrize("dtype", NUMBER_TYPES)
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ([0, 2], False),
                                           (-1, True)])
def test_reduce_min_and_prod(graph, sess, dtype, axis, keepdims):
    a = RNG.integers(-3, 4, size=(2, 3, 4)).astype(dtype)
    ax = tuple(axis) if isinstance(axis, list) else axis
    mn, pr = sess.run([sl.reduce_min(a, axis=axis, keepdims=keepdims),
                       sl.reduce_prod(a, axis=axis, keepdims=keepdims)])
    np.testing.assert_array_equal(mn, np.min(a, axis=ax, keepdims=keepdims))
    np.testing.assert_array_equal(pr, np.prod(a, axis=ax, keepdims=keepdims))


def test_empty_min_and_prod(graph, sess):
    e = np.zeros((0, 2), np.float32)
    mn, pr = sess.run([sl.reduce_min(e, axis=0), sl.reduce_prod(e, axis=0)])
    np.testing.assert_array_equal(mn, [np.inf, np.inf])
    np.testing.assert_array_equal(pr, [1, 1])


@pytest.mark.parametrize("dtype", NUMBER_TYPES)
def test_argmax_argmin_like_numpy(graph, sess, dtype):
    a = RNG.integers(-3, 4, size=(3, 4, 5)).astype(dtype)  # Many ties: the first index wins.
    x = sl.constant(a)
    outs = sess.run([sl.argmax(x, axis=1), sl.argmin(x, axis=-1), sl.argmax(x),
                     sl.argmax(x, dimension=2, output_type=sl.int32)])
    np.testing.assert_array_equal(outs[0], np.argmax(a, axis=1))
    np.testing.assert_array_equal(outs[1], np.argmin(a, axis=-1))
    np.testing.assert_array_equal(outs[2], np.argmax(a, axis=0))
    np.testing.assert_array_equal(outs[3], np.argmax(a, axis=2))
    assert outs[0].dtype == np.int64 and outs[3].dtype == np.int32


def test_argmax_errors_name_the_shape(graph, sess):
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"dimension must be one axis in \[-2, 2\) for input of shape "
                             r"\[2,3\], got 2"):
        sl.argmax(np.ones((2, 3)), axis=2)
    x = sl.placeholder(sl.float32, shape=None)
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"cannot take the argmax of an empty axis: input of shape \[2,0\]"):
        sess.run(sl.argmax(x, axis=1), {x: np.zeros((2, 0), np.float32)})
    with pytest.raises(ValueError, match="output_type must be int32 or int64"):
        sl.argmax(x, output_type=sl.float32)


def test_add_n_and_clip_by_value(graph, sess):
    a, b, c = RNG.normal(size=(3, 2, 3))
    np.testing.assert_allclose(sess.run(sl.add_n([a, b, c])), a + b + c)
    np.testing.assert_array_equal(sess.run(sl.add_n([a])), a)
    np.testing.assert_array_equal(sess.run(sl.clip_by_value(a, -0.5, 0.5)), np.clip(a, -0.5, 0.5))


@pytest.mark.parametrize("name,build,values", [
    ("abs", lambda x: sl.abs(x), [RNG.uniform(0.1, 1, (2, 3)) * RNG.choice([-1, 1], (2, 3))]),
    ("rsqrt", lambda x: sl.rsqrt(x), [RNG.uniform(0.5, 2, (3,))]),
    ("reciprocal", lambda x: sl.reciprocal(x), [RNG.uniform(0.5, 2, (3,))]),
    ("pow", lambda x, y: sl.pow(x, y), [RNG.uniform(0.5, 2, (2, 3)), RNG.uniform(-2, 2, (3,))]),
    ("floormod", lambda x, y: sl.floormod(x, y),
     [np.array([[2.3, -2.3, 5.3]]), np.array([[1.1], [-1.7]])]),
    ("where", lambda x, y: sl.where([[True, False, True]], x, y),
     [RNG.normal(size=(2, 3)), RNG.normal(size=(3,))]),
    ("reduce_min", lambda x: sl.reduce_min(x, axis=1),
     [RNG.permutation(12).reshape(3, 4) / 4.0]),
    ("reduce_prod", lambda x: sl.reduce_prod(x, axis=[0, 2]), [RNG.uniform(0.5, 2, (2, 3, 2))]),
    ("reduce_prod_one_zero", lambda x: sl.reduce_prod(x, axis=1),
     [np.array([[0.0, 2.0, 3.0], [1.5, 0.5, 2.0]])]),
    ("reduce_prod_two_zeros", lambda x: sl.reduce_prod(x, axis=1),
     [np.array([[0.0, 2.0, 0.0], [1.5, 0.5, 2.0]])]),
    ("clip_by_value", lambda x: sl.clip_by_value(x, -0.5, 0.5),
     [np.array([-0.9, -0.2, 0.3, 0.8])]),
    ("add_n", lambda x, y: sl.add_n([x, y, x]), [RNG.normal(size=(2,)), RNG.normal(size=(2,))]),
])
def test_gradients_match_finite_differences(graph, sess, name, build, values):
    assert gradient_error(sess, build, values) < 1e-6


def test_comparisons_pass_no_gradient(graph, sess):
    x = sl.placeholder(sl.float64, shape=[3])
    y = sl.cast(x > 0.0, sl.float64) * x + sl.floor(x) + sl.cast(sl.argmax(x), sl.float64)
    (g,) = sl.gradients(y, [x])
    np.testing.assert_array_equal(sess.run(g, {x: [-1.0, 0.5, 2.0]}), [0.0, 1.0, 1.0])
