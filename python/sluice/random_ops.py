"""Tensors of pseudo-random numbers (Philox4x32-10, see ops/random_ops.h).

A non-zero `seed` makes a node's stream reproducible: a fresh session repeats it bit for bit;
each run of the node continues the stream. seed=None draws a nondeterministic stream.
"""

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import math_ops


def set_random_seed(seed):
    """Sets the default graph's seed: random ops built afterwards without a seed of their own
    become reproducible (each gets the graph seed plus its own position in the graph), and ops
    with a seed get the graph seed as their second key."""
    framework.get_default_graph().seed = None if seed is None else int(seed)


def get_seed(op_seed):
    """The (seed, seed2) attributes of a random op built now with `op_seed` (None: unseeded):
    (0, 0), a fresh random stream, when neither the op nor the graph has a seed."""
    graph_seed = getattr(framework.get_default_graph(), "seed", None)
    if graph_seed is None:
        return int(op_seed or 0), 0
    if op_seed is None:
        op_seed = len(framework.get_default_graph())
    seed, seed2 = int(op_seed), graph_seed
    if seed == 0 and seed2 == 0:
        seed2 = 2**31 - 1  # (0, 0) would mean "random".
    return seed, seed2


def _random(op_type, shape, dtype, seed, name):
    seed, seed2 = get_seed(seed)
    attrs = {"dtype": dtypes.as_dtype(dtype), "seed": seed, "seed2": seed2}
    return framework._op(op_type, [array_ops._int_list(shape)], attrs, name=name).outputs[0]


def random_shuffle(value, seed=None, name=None):
    """`value` with its rows (dimension 0) in a random order; each run draws a new order."""
    seed, seed2 = get_seed(seed)
    return framework._op("RandomShuffle", [value], {"seed": seed, "seed2": seed2},
                         name=name).outputs[0]


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
