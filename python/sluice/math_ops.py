"""Elementwise arithmetic (numpy broadcasting), unary math, matrix product and reductions.

Tensors and Variables also support the operators `+ - * / @` and unary `-`; a literal operand
takes the dtype of the tensor operand (`x + 1` adds a float32 1 to a float32 x).
"""

import numpy as np

from sluice import array_ops
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


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    """Matrix product of rank-2 tensors: op(a) [m,k] x op(b) [k,n] -> [m,n].

    `transpose_a` / `transpose_b` use the transpose of an operand given in its stored layout.
    """
    attrs = {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)}
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
