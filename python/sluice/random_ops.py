"""Tensors of pseudo-random numbers (Philox4x32-10, see ops/random_ops.h).

A non-zero `seed` makes a node's stream reproducible: a fresh session repeats it bit for bit;
each run of the node continues the stream. seed=None draws a nondeterministic stream.
"""

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import math_ops


def _random(op_type, shape, dtype, seed, name):
    attrs = {"dtype": dtypes.as_dtype(dtype), "seed": int(seed or 0)}
    return framework._op(op_type, [array_ops._int_list(shape)], attrs, name=name).outputs[0]


def random_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal samples of `shape` with the given `mean` and `stddev` (float32 or float64)."""
    if mean == 0.0 and stddev == 1.0:
        return _random("RandomNormal", shape, dtype, seed, name or "random_normal")
    with framework.get_default_graph().name_scope(name or "random_normal"):
        r = _random("RandomNormal", shape, dtype, seed, None)
        return math_ops.add(math_ops.multiply(r, stddev), mean)


def random_uniform(shape, minval=0.0, maxval=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Uniform samples of `shape` in [minval, maxval) (float32 or float64)."""
    if minval == 0.0 and maxval == 1.0:
        return _random("RandomUniform", shape, dtype, seed, name or "random_uniform")
    with framework.get_default_graph().name_scope(name or "random_uniform"):
        r = _random("RandomUniform", shape, dtype, seed, None)
        return math_ops.add(math_ops.multiply(r, maxval - minval), minval)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal samples of `shape` with the given `mean` and `stddev`, none further than two
    standard deviations from the mean (those are drawn again)."""
    if mean == 0.0 and stddev == 1.0:
        return _random("TruncatedNormal", shape, dtype, seed, name or "truncated_normal")
    with framework.get_default_graph().name_scope(name or "truncated_normal"):
        r = _random("TruncatedNormal", shape, dtype, seed, None)
        return math_ops.add(math_ops.multiply(r, stddev), mean)
