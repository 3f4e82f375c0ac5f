"""Elementwise arithmetic (numpy broadcasting), unary math, matrix product and reductions.

Tensors and Variables also support the operators `+ - * / // % ** @ < <= > >= & | ^ ~` and unary
`-` and `abs()`; a literal operand takes the dtype of the tensor operand (`x + 1` adds a float32
1 to a float32 x). `==` stays Python's identity comparison, as in TensorFlow 1: use sl.equal.
"""

import numpy as np

from sluice import array_ops
from sluice import dtypes
from sluice import framework


def _out(op):
    return op.outputs[0]


def add(x, y, name=None):
    """x + y elementwise, with numpy broadcasting."""
    return _out(framework._op("Add", [x, y], name=name))


def subtract(x, y, name=None):
    """x - y elementwise, with numpy broadcasting."""
    return _out(framework._op("Sub", [x, y], name=name))


def multiply(x, y, name=None):
    """x * y elementwise, with numpy broadcasting."""
    return _out(framework._op("Mul", [x, y], name=name))


def divide(x, y, name=None):
    """x / y elementwise, with numpy broadcasting (float32 and float64)."""
    return _out(framework._op("Div", [x, y], name=name))


def maximum(x, y, name=None):
    """The larger of x and y elementwise, with numpy broadcasting."""
    return _out(framework._op("Maximum", [x, y], name=name))


def minimum(x, y, name=None):
    """The smaller of x and y elementwise, with numpy broadcasting."""
    return _out(framework._op("Minimum", [x, y], name=name))


def negative(x, name=None):
    """-x elementwise."""
    return _out(framework._op("Neg", [x], name=name))


def exp(x, name=None):
    """e to the power x, elementwise."""
    return _out(framework._op("Exp", [x], name=name))


def log(x, name=None):
    """Natural logarithm, elementwise."""
    return _out(framework._op("Log", [x], name=name))


def square(x, name=None):
    """x * x elementwise."""
    return _out(framework._op("Square", [x], name=name))


def sqrt(x, name=None):
    """Square root, elementwise."""
    return _out(framework._op("Sqrt", [x], name=name))


def sigmoid(x, name=None):
    """1 / (1 + exp(-x)) elementwise."""
    return _out(framework._op("Sigmoid", [x], name=name))


def tanh(x, name=None):
    """Hyperbolic tangent, elementwise."""
    return _out(framework._op("Tanh", [x], name=name))


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           name=None):
    """Matrix product: op(a) [..., m, k] x op(b) [..., k, n] -> [..., m, n].

    `transpose_a` / `transpose_b` (or, for these real dtypes the same, `adjoint_a` /
    `adjoint_b`) use the transpose of an operand given in its stored layout. Operands of rank 3
    or more multiply matrix by matrix over their leading dimensions, which broadcast as in numpy.
    """
    ta, tb = bool(transpose_a or adjoint_a), bool(transpose_b or adjoint_b)
    ranks = [_static_rank(a), _static_rank(b)]
    if any(r is not None and r > 2 for r in ranks):
        attrs = {"adj_x": ta, "adj_y": tb}
        return _out(framework._op("BatchMatMul", [a, b], attrs, name=name))
    attrs = {"transpose_a": ta, "transpose_b": tb}
    return _out(framework._op("MatMul", [a, b], attrs, name=name))


def _reduce(op_type, input_tensor, axis, keepdims, name, reduction_indices=None,
            keep_dims=None):
    # TensorFlow 1's older argument names, still in most of its tutorials.
    if reduction_indices is not None:
        if axis is not None:
            raise ValueError("pass axis= or reduction_indices=, not both")
        axis = reduction_indices
    if keep_dims is not None:
        if keepdims is not None:
            raise ValueError("pass keepdims= or keep_dims=, not both")
        keepdims = keep_dims
    keepdims = bool(keepdims)
    x = framework.convert_to_tensor(input_tensor)
    if axis is None:
        if x.shape is None:
            if keepdims:
                raise ValueError(
                    "keepdims=True with axis=None needs a tensor of known rank: " + x.name)
            # Unknown rank: reduce the flattened tensor.
            x, axis = array_ops.reshape(x, [-1]), 0
        else:
            axis = list(range(len(x.shape)))
    if isinstance(axis, (int, np.integer)):
        axis = np.int32(axis)
    elif isinstance(axis, (list, tuple)):
        axis = np.asarray(axis, dtype=np.int32).reshape(-1)
    return _out(framework._op(op_type, [x, axis], {"keep_dims": bool(keepdims)}, name=name))


def reduce_sum(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
               keep_dims=None):
    """Sum over `axis` (an int, a list of ints, or None for all; negative counts from the end).

    With `keepdims` the reduced dimensions stay with size 1. `reduction_indices` and
    `keep_dims` are TensorFlow 1's older names of `axis` and `keepdims`.
    """
    return _reduce("Sum", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_mean(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
                keep_dims=None):
    """Mean over `axis` (an int, a list of ints, or None for all); see reduce_sum."""
    return _reduce("Mean", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_max(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
               keep_dims=None):
    """Maximum over `axis` (an int, a list of ints, or None for all); see reduce_sum."""
    return _reduce("Max", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_min(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
               keep_dims=None):
    """Minimum over `axis` (an int, a list of ints, or None for all); see reduce_sum."""
    return _reduce("Min", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_prod(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
                keep_dims=None):
    """Product over `axis` (an int, a list of ints, or None for all); see reduce_sum."""
    return _reduce("Prod", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_any(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
               keep_dims=None):
    """Logical or of a bool tensor over `axis`; see reduce_sum."""
    return _reduce("Any", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_all(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
               keep_dims=None):
    """Logical and of a bool tensor over `axis`; see reduce_sum."""
    return _reduce("All", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def _arg_reduce(op_type, input, axis, name, dimension, output_type):
    if dimension is not None:
        if axis is not None:
            raise ValueError("pass axis= or dimension=, not both")
        axis = dimension
    if axis is None:
        axis = 0  # TensorFlow 1's default.
    output_type = dtypes.as_dtype(output_type)
    if output_type not in (dtypes.int32, dtypes.int64):
        raise ValueError("output_type must be int32 or int64, got " + output_type.name)
    return _out(framework._op(op_type, [input, np.int32(axis)], {"output_type": output_type},
                              name=name))


def argmax(input, axis=None, name=None, dimension=None, output_type=dtypes.int64):
    """The index of the largest element along `axis` (the first of ties), as `output_type`.

    `dimension` is TensorFlow 1's older name of `axis`; the default axis is 0.
    """
    return _arg_reduce("ArgMax", input, axis, name, dimension, output_type)


def argmin(input, axis=None, name=None, dimension=None, output_type=dtypes.int64):
    """The index of the smallest element along `axis`; see argmax."""
    return _arg_reduce("ArgMin", input, axis, name, dimension, output_type)


def _unary(op_type, doc):
    def fn(x, name=None):
        return _out(framework._op(op_type, [x], name=name))

    fn.__doc__ = doc
    return fn


def _binary_op(op_type, doc):
    def fn(x, y, name=None):
        return _out(framework._op(op_type, [x, y], name=name))

    fn.__doc__ = doc
    return fn


abs = _unary("Abs", "|x| elementwise.")  # noqa: A001
sign = _unary("Sign", "-1, 0 or 1 as x is negative, zero or positive, elementwise.")
rsqrt = _unary("Rsqrt", "1 / sqrt(x) elementwise.")
reciprocal = _unary("Reciprocal", "1 / x elementwise.")
floor = _unary("Floor", "The largest integer <= x, elementwise.")
ceil = _unary("Ceil", "The smallest integer >= x, elementwise.")
round = _unary("Round", "x rounded to the nearest integer, halves to even, elementwise.")  # noqa: A001
logical_not = _unary("LogicalNot", "not x, elementwise (bool).")

pow = _binary_op("Pow", "x to the power y elementwise, numpy broadcasting (float32, float64).")  # noqa: A001
floordiv = _binary_op("FloorDiv", "floor(x / y) elementwise (Python's //), numpy broadcasting.")
floormod = _binary_op(
    "FloorMod", "x - floor(x / y) * y elementwise (Python's %: the sign of y), broadcasting.")
mod = floormod
equal = _binary_op("Equal", "x == y elementwise (bool), numpy broadcasting.")
not_equal = _binary_op("NotEqual", "x != y elementwise (bool), numpy broadcasting.")
less = _binary_op("Less", "x < y elementwise (bool), numpy broadcasting.")
less_equal = _binary_op("LessEqual", "x <= y elementwise (bool), numpy broadcasting.")
greater = _binary_op("Greater", "x > y elementwise (bool), numpy broadcasting.")
greater_equal = _binary_op("GreaterEqual", "x >= y elementwise (bool), numpy broadcasting.")
logical_and = _binary_op("LogicalAnd", "x and y elementwise (bool), numpy broadcasting.")
logical_or = _binary_op("LogicalOr", "x or y elementwise (bool), numpy broadcasting.")


def logical_xor(x, y, name=None):
    """x xor y elementwise (bool), numpy broadcasting."""
    return logical_and(logical_or(x, y), logical_not(logical_and(x, y)), name=name)


def where(condition, x=None, y=None, name=None):
    """`x` where `condition` holds, else `y`, elementwise (TensorFlow 1's select form).

    `condition` is a bool tensor of x's shape, or (TensorFlow 1's rule) a vector selecting
    whole rows of x; otherwise the three broadcast numpy-style.
    """
    if x is None or y is None:
        raise ValueError(
            "where(condition) without x and y (the coordinates of true elements) is not "
            "supported; pass both x and y")
    c = framework.convert_to_tensor(condition)
    rank_x = _static_rank(x)
    if _static_rank(c) == 1 and rank_x is not None and rank_x > 1:
        c = array_ops.reshape(c, [-1] + [1] * (rank_x - 1))
    return _out(framework._op("Select", [c, x, y], name=name))


def _static_rank(value):
    t = framework._as_tensor_or_none(value)
    if t is None:
        return np.ndim(value)
    return None if t.shape is None else len(t.shape)


def add_n(inputs, name=None):
    """The elementwise sum of a list of tensors of one shape and dtype."""
    inputs = list(inputs)
    if not inputs:
        raise ValueError("add_n needs at least one tensor")
    if len(inputs) == 1:
        return array_ops.identity(inputs[0], name=name)
    return _out(framework._op("AddN", [inputs], name=name))


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """`t` with each element clipped into [clip_value_min, clip_value_max]; the gradient
    passes where t is inside the range."""
    return minimum(maximum(t, clip_value_min), clip_value_max, name=name)


def unsorted_segment_sum(data, segment_ids, num_segments, name=None):
    """output[i] = the sum of the rows data[j...] whose segment_ids[j...] == i; segment_ids'
    shape is a prefix of data's. An id outside [0, num_segments) is an error naming it."""
    return _out(framework._op("UnsortedSegmentSum", [data, segment_ids, np.int32(num_segments)],
                              name=name))


def _sum_of_squares(t, axes=None, keepdims=False):
    return reduce_sum(multiply(t, t), axis=axes, keepdims=keepdims)


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """`t` scaled so that its L2 norm (over `axes`, default all) is at most `clip_norm`:
    t * clip_norm / max(norm, clip_norm). A zero tensor stays zero (and has a finite gradient)."""
    with framework.get_default_graph().name_scope(name or "clip_by_norm"):
        t = framework.convert_to_tensor(t)
        l2sum = _sum_of_squares(t, axes, keepdims=True)
        positive = greater(l2sum, 0.0)
        # sqrt only of positive sums: the gradient of sqrt at 0 is infinite.
        safe = where(positive, l2sum, array_ops.ones_like(l2sum))
        norm = where(positive, sqrt(safe), l2sum)
        return divide(multiply(t, clip_norm), maximum(norm, clip_norm))


def global_norm(t_list, name=None):
    """sqrt(sum of the squares of every element of every tensor in t_list); None entries are
    skipped."""
    tensors = [t for t in t_list if t is not None]
    if not tensors:
        raise ValueError("global_norm needs at least one tensor")
    with framework.get_default_graph().name_scope(name or "global_norm"):
        return sqrt(add_n([_sum_of_squares(t) for t in tensors]))


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """The tensors scaled together by clip_norm / max(global_norm, clip_norm), and the global
    norm (TF1's (list_clipped, global_norm)); None entries stay None."""
    t_list = list(t_list)
    with framework.get_default_graph().name_scope(name or "clip_by_global_norm"):
        norm = global_norm(t_list) if use_norm is None else use_norm
        scale = divide(clip_norm, maximum(norm, clip_norm))
        clipped = [None if t is None else multiply(t, _cast_like(scale, t)) for t in t_list]
        return clipped, norm


def _cast_like(x, t):
    """`x` cast to `t`'s dtype when they differ."""
    t = framework.convert_to_tensor(t)
    x = framework.convert_to_tensor(x)
    return x if x.dtype == t.dtype else array_ops.cast(x, t.dtype)
