"""Element types of tensors: `sluice.float32`, `float64`, `int32`, `int64` and `bool`.

A `DType` converts to numpy with `.as_numpy_dtype`; `as_dtype` accepts a DType, a numpy dtype
or type, or a name::

    sl.as_dtype(np.float32) is sl.float32        # True
    sl.as_dtype("int64").as_numpy_dtype          # dtype('int64')
"""

import builtins

import numpy as np

from sluice._core import core as _core

DType = _core.DType
float32 = DType.float32
float64 = DType.float64
int32 = DType.int32
int64 = DType.int64
bool = DType.bool  # noqa: A001  (the name TensorFlow users know: sl.bool)


# TensorFlow's own names where numpy's differ: numpy reads "float" as float64, TensorFlow (and
# its users' programs) as float32.
_TF_NAMES = {"float": float32, "double": float64}


def as_dtype(type_value):
    """Converts `type_value` to a DType.

    Args:
      type_value: a DType; a numpy dtype or scalar type (np.float32); a name ("float32", and
        TensorFlow's "float" for float32 and "double" for float64); or the Python types float
        (float32), int (int32) and bool.

    Raises:
      TypeError: if there is no matching DType.
    """
    if isinstance(type_value, DType):
        return type_value
    if type_value is builtins.float:
        return float32
    if type_value is builtins.int:
        return int32
    if type_value is builtins.bool:
        return bool
    if isinstance(type_value, str) and type_value in _TF_NAMES:
        return _TF_NAMES[type_value]
    try:
        numpy_dtype = np.dtype(type_value)
    except TypeError as e:
        raise TypeError("cannot convert {!r} to a sluice DType".format(type_value)) from e
    try:
        return _core._dtype_from_numpy(numpy_dtype)
    except Exception as e:  # InvalidArgumentError from the core: say it as a TypeError.
        raise TypeError(str(e)) from e
