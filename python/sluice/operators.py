"""Python operators on Tensor and Variable (`x + y`, `x @ w`, `-x`, ...), installed in one
place when the package is imported: each builds the op of the same name (sl.add, sl.matmul...)."""

from sluice import framework
from sluice import math_ops
from sluice import variables


def _binary(fn, reverse=False):
    def operator(self, other):
        return fn(other, self) if reverse else fn(self, other)

    operator.__doc__ = "{} ({}).".format(fn.__name__, "reflected" if reverse else "operator")
    return operator


def _tensor_bool(self):
    raise TypeError(
        "a sluice Tensor has no value until a Session runs it; it cannot be used as a Python "
        "bool (use sess.run to get its value)")


OPERATORS = {
    "__add__": _binary(math_ops.add),
    "__radd__": _binary(math_ops.add, reverse=True),
    "__sub__": _binary(math_ops.subtract),
    "__rsub__": _binary(math_ops.subtract, reverse=True),
    "__mul__": _binary(math_ops.multiply),
    "__rmul__": _binary(math_ops.multiply, reverse=True),
    "__truediv__": _binary(math_ops.divide),
    "__rtruediv__": _binary(math_ops.divide, reverse=True),
    "__matmul__": _binary(math_ops.matmul),
    "__rmatmul__": _binary(math_ops.matmul, reverse=True),
    "__floordiv__": _binary(math_ops.floordiv),
    "__rfloordiv__": _binary(math_ops.floordiv, reverse=True),
    "__mod__": _binary(math_ops.floormod),
    "__rmod__": _binary(math_ops.floormod, reverse=True),
    "__pow__": _binary(math_ops.pow),
    "__rpow__": _binary(math_ops.pow, reverse=True),
    "__lt__": _binary(math_ops.less),
    "__le__": _binary(math_ops.less_equal),
    "__gt__": _binary(math_ops.greater),
    "__ge__": _binary(math_ops.greater_equal),
    "__and__": _binary(math_ops.logical_and),
    "__rand__": _binary(math_ops.logical_and, reverse=True),
    "__or__": _binary(math_ops.logical_or),
    "__ror__": _binary(math_ops.logical_or, reverse=True),
    "__xor__": _binary(math_ops.logical_xor),
    "__rxor__": _binary(math_ops.logical_xor, reverse=True),
    "__invert__": lambda self: math_ops.logical_not(self),
    "__abs__": lambda self: math_ops.abs(self),
    "__neg__": lambda self: math_ops.negative(self),
    "__bool__": _tensor_bool,
    # numpy operators return NotImplemented for Tensors, so `array + tensor` builds an op.
    "__array_ufunc__": None,
}


def overload_operators(cls):
    """Installs the tensor operators on `cls` (Tensor and Variable)."""
    for attr, fn in OPERATORS.items():
        setattr(cls, attr, fn)


overload_operators(framework.Tensor)
overload_operators(variables.Variable)
overload_operators(variables.PartitionedVariable)
