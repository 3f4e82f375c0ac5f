"""Constants, placeholders and ops that reshape, join, cut or convert tensors.

Arguments named `tensor`, `x`, `value` ... accept Tensors, Variables, numpy arrays, Python
numbers and nested lists; literals become constants. Shape, axis and perm arguments may be
Python lists. Every function takes an optional `name` for the new operation.
"""

import numpy as np

from sluice import dtypes
from sluice import framework
from sluice._core import core as _core


def _out(op):
    return op.outputs[0]


def constant(value, dtype=None, shape=None, name="Const"):
    """A constant tensor.

    Args:
      value: a numpy array, Python number or nested list. Without `dtype`, numpy arrays keep
        their dtype, Python floats become float32 and ints int32 (int64 if too large).
      dtype: optional DType to convert `value` to.
      shape: optional shape; a scalar `value` is broadcast to it, other values are reshaped.
      name: the operation's name.
    """
    if dtype is not None:
        array = np.asarray(value, dtype=dtypes.as_dtype(dtype).as_numpy_dtype)
    else:
        array = np.asarray(_core._literal_value(value))
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        array = np.broadcast_to(array, shape) if array.size == 1 else array.reshape(shape)
    g = framework.get_default_graph()
    # Not np.ascontiguousarray: it makes a 0-d array 1-d, and constant(1.0) is a scalar.
    return g._add_const(np.array(array, order="C", copy=False), name,
                        framework._caller_location())


def placeholder(dtype, shape=None, name=None):
    """A tensor whose value is fed at run time: `sess.run(..., feed_dict={x: value})`.

    Args:
      dtype: the element type.
      shape: optional shape; None for unknown sizes (`[None, 4]`), or None for an unknown rank;
        an int n means [n].
        A fed value must be compatible with it.
      name: the operation's name.
    """
    if isinstance(shape, (int, np.integer)):
        shape = [shape]  # TensorFlow reads placeholder(shape=3) as a vector of 3.
    attrs = {"dtype": dtypes.as_dtype(dtype), "shape": None if shape is None else list(shape)}
    return _out(framework._op("Placeholder", [], attrs, name))


def identity(input, name=None):  # noqa: A002  (TensorFlow's argument name)
    """Returns `input` unchanged (no copy)."""
    return _out(framework._op("Identity", [input], name=name))


def stop_gradient(input, name=None):  # noqa: A002  (TensorFlow's argument name)
    """Returns `input` unchanged; gradients do not flow back through it."""
    return _out(framework._op("StopGradient", [input], name=name))


def no_op(name=None):
    """An operation that does nothing; run it as a target to run its control dependencies."""
    return framework._op("NoOp", [], name=name)


def group(*inputs, name=None):
    """An operation that runs after all of `inputs` (Operations, Tensors or Variables).

    Running it as a target runs them all: `sess.run(sl.group(update_a, update_b))`.
    """
    g = framework._graph_of(inputs)
    with g.as_default(), g.control_dependencies(list(inputs)):
        return no_op(name=name or "group_deps")


def reshape(tensor, shape, name=None):
    """The elements of `tensor` in the same order with a new `shape` (one size may be -1: it
    is inferred)."""
    return _out(framework._op("Reshape", [tensor, _int_list(shape)], name=name))


def transpose(a, perm=None, name=None):
    """Permutes the dimensions of `a`: dimension i of the result is dimension perm[i] of `a`.

    Without `perm` the dimensions are reversed (the rank of `a` must then be known).
    """
    if perm is None:
        t = framework.convert_to_tensor(a)
        if t.shape is None:
            raise ValueError("transpose without perm needs a tensor of known rank: " + t.name)
        perm = list(reversed(range(len(t.shape))))
        a = t
    return _out(framework._op("Transpose", [a, _int_list(perm)], name=name))


def concat(values, axis, name=None):
    """Joins the tensors in `values` along `axis` (negative counts from the end)."""
    return _out(framework._op("Concat", [list(values), axis], name=name))


def split(value, num_or_size_splits, axis=0, name=None):
    """Cuts `value` into `num_or_size_splits` equal parts along `axis`; returns a list.

    Only an int number of equal parts is supported (the size must divide evenly).
    """
    if not isinstance(num_or_size_splits, (int, np.integer)):
        raise TypeError("split supports an int number of equal parts, got {!r}".format(
            num_or_size_splits))
    op = framework._op(
        "Split", [np.int32(axis), value], {"num_split": int(num_or_size_splits)}, name=name)
    return op.outputs


def slice(input_, begin, size, name=None):  # noqa: A001  (TensorFlow's name)
    """The box of `input_` starting at `begin` with extent `size` (-1: to the end) per dimension."""
    return _out(framework._op("Slice", [input_, _int_list(begin), _int_list(size)], name=name))


def cast(x, dtype, name=None):
    """`x` converted to `dtype`. Floats to ints truncate toward zero; to bool, nonzero is True."""
    return _out(framework._op("Cast", [x], {"DstT": dtypes.as_dtype(dtype)}, name=name))


def fill(dims, value, name=None):
    """A tensor of shape `dims` with every element equal to the scalar `value`."""
    return _out(framework._op("Fill", [_int_list(dims), value], name=name))


def zeros(shape, dtype=dtypes.float32, name=None):
    """A tensor of `shape` filled with zeros (False for bool)."""
    dtype = dtypes.as_dtype(dtype)
    return fill(shape, np.zeros((), dtype.as_numpy_dtype), name=name or "zeros")


def ones(shape, dtype=dtypes.float32, name=None):
    """A tensor of `shape` filled with ones (True for bool)."""
    dtype = dtypes.as_dtype(dtype)
    return fill(shape, np.ones((), dtype.as_numpy_dtype), name=name or "ones")


def zeros_like(tensor, dtype=None, name=None):
    """Zeros with the shape of `tensor` (and its dtype, or `dtype`)."""
    out = _out(framework._op("ZerosLike", [tensor], name=name))
    return out if dtype is None or dtypes.as_dtype(dtype) == out.dtype else cast(out, dtype)


def ones_like(tensor, dtype=None, name=None):
    """Ones with the shape of `tensor` (and its dtype, or `dtype`)."""
    out = _out(framework._op("OnesLike", [tensor], name=name))
    return out if dtype is None or dtypes.as_dtype(dtype) == out.dtype else cast(out, dtype)


def _int32(value):
    """`value` as int32: a tensor of another integer dtype is cast, literals become arrays."""
    t = framework._as_tensor_or_none(value)
    if t is None:
        return np.asarray(value, dtype=np.int32)
    return t if t.dtype == dtypes.int32 else cast(t, dtypes.int32)


def _int_list(value):
    """Python lists of sizes or axes become int32 arrays (int64 when needed); tensors pass."""
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, np.integer)) for v in value):
        array = np.asarray(value, dtype=np.int64)
        fits = array.size == 0 or (array.min() >= -2**31 and array.max() < 2**31)
        return array.astype(np.int32) if fits else array
    return value


framework.register_tensor_conversion_function(
    object, lambda value, dtype=None, name=None: constant(value, dtype=dtype, name=name))


def shape(input, name=None, out_type=dtypes.int32):
    """The shape of `input` as a vector, computed when the graph runs (`out_type` int32 or
    int64)."""
    s = _out(framework._op("Shape", [input], name=None if out_type != dtypes.int64 else name))
    return s if dtypes.as_dtype(out_type) == dtypes.int64 else cast(s, dtypes.int32, name=name)


def size(input, name=None, out_type=dtypes.int32):
    """The number of elements of `input`, computed when the graph runs."""
    from sluice import math_ops  # math_ops imports this module.

    return math_ops.reduce_prod(shape(input, out_type=out_type), name=name)


def rank(input, name=None):
    """The number of dimensions of `input` as an int32 scalar, computed when the graph runs."""
    return size(shape(input), name=name)


def _static_dims(t):
    return None if t.shape is None else list(t.shape)


def expand_dims(input, axis, name=None):
    """`input` with a new size-1 dimension inserted at `axis` (negative counts from the end of
    the result)."""
    t = framework.convert_to_tensor(input)
    dims = _static_dims(t)
    if dims is None:
        raise ValueError("expand_dims needs a tensor of known rank: " + t.name)
    axis = int(axis)
    if not -len(dims) - 1 <= axis <= len(dims):
        raise ValueError("axis {} is out of range for expand_dims of a rank-{} tensor {}".format(
            axis, len(dims), t.name))
    if axis < 0:
        axis += len(dims) + 1
    old = list(range(len(dims)))
    return _reshape_keeping(t, old[:axis] + [None] + old[axis:], name)


def squeeze(input, axis=None, name=None, squeeze_dims=None):
    """`input` without its size-1 dimensions (all of them, or those in `axis`)."""
    if squeeze_dims is not None:
        axis = squeeze_dims
    t = framework.convert_to_tensor(input)
    dims = _static_dims(t)
    if dims is None:
        raise ValueError("squeeze needs a tensor of known rank: " + t.name)
    if axis is None:
        drop = [i for i, d in enumerate(dims) if d == 1]
    else:
        axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
        drop = []
        for a in axes:
            a = int(a) + (len(dims) if a < 0 else 0)
            if not 0 <= a < len(dims) or dims[a] not in (1, None):
                raise ValueError("cannot squeeze dimension {} of {} (shape {})".format(
                    a, t.name, dims))
            drop.append(a)
    return _reshape_keeping(t, [i for i in range(len(dims)) if i not in drop], name)


def _reshape_keeping(t, sources, name):
    """Reshape `t` so that dimension i of the result is dimension sources[i] of `t`, or a new
    size-1 dimension where sources[i] is None. Sizes known only when the graph runs are read
    from the runtime shape when more than one is unknown (one becomes -1)."""
    dims = _static_dims(t)
    new_dims = [1 if src is None else dims[src] for src in sources]
    if sum(d is None for d in new_dims) <= 1:
        return reshape(t, [-1 if d is None else d for d in new_dims], name=name)
    runtime = shape(t, out_type=dtypes.int64)
    parts = [np.asarray([d], np.int64) if d is not None else slice(runtime, [src], [1])
             for src, d in zip(sources, new_dims)]
    return reshape(t, concat(parts, 0), name=name)


def stack(values, axis=0, name=None):
    """The tensors in `values` (one shape) joined along a new dimension `axis`."""
    values = [framework.convert_to_tensor(v) for v in values]
    if not values:
        raise ValueError("stack needs at least one tensor")
    if len(values) == 1:
        return expand_dims(values[0], axis, name=name)
    return concat([expand_dims(v, axis) for v in values], axis, name=name)


def unstack(value, num=None, axis=0, name=None):
    """The list of slices of `value` along `axis`, each without that dimension."""
    t = framework.convert_to_tensor(value)
    dims = _static_dims(t)
    if dims is None:
        raise ValueError("unstack needs a tensor of known rank: " + t.name)
    if axis < 0:
        axis += len(dims)
    n = dims[axis] if num is None else num
    if n is None:
        raise ValueError("unstack cannot infer num from shape {} of {}".format(dims, t.name))
    parts = split(t, n, axis=axis) if n > 1 else [t]
    return [squeeze(p, axis=axis) for p in parts]


def gather(params, indices, validate_indices=None, name=None, axis=0):
    """Slices of `params` along `axis` at `indices` (any shape): the result has shape
    params.shape[:axis] + indices.shape + params.shape[axis+1:]. An index out of range is an
    InvalidArgumentError naming it. `validate_indices` is accepted and ignored (indices are
    always checked)."""
    del validate_indices
    return _out(framework._op("Gather", [params, indices, np.int32(axis)], name=name))


def range_(start, limit=None, delta=1, dtype=None, name="range"):
    """`sl.range` (named so here to leave Python's range to this module): start, start +
    delta, ... below limit (one argument: 0 .. start - 1). The dtype is `dtype`, else the
    widest of the arguments' (int32 for Python ints, float32 for floats)."""
    if limit is None:
        start, limit = 0, start
    args = [start, limit, delta]
    tensors = [framework._as_tensor_or_none(a) for a in args]
    if dtype is None:
        found = [t.dtype for t in tensors if t is not None]
        order = [dtypes.int32, dtypes.int64, dtypes.float32, dtypes.float64]
        if not found:
            found = [dtypes.float32 if any(isinstance(a, float) for a in args) else dtypes.int32]
        dtype = max(found, key=order.index)
    dtype = dtypes.as_dtype(dtype)
    args = [cast(t, dtype) if t is not None and t.dtype != dtype else
            (t if t is not None else np.asarray(a, dtype=dtype.as_numpy_dtype))
            for a, t in zip(args, tensors)]
    return _out(framework._op("Range", args, name=name))


def dynamic_partition(data, partitions, num_partitions, name=None):
    """`num_partitions` tensors: output p holds, in order, the rows of `data` whose entry in
    `partitions` (int32, its shape opening data's) is p."""
    op = framework._op("DynamicPartition", [data, _int32(partitions)],
                       {"num_partitions": int(num_partitions)}, name=name)
    return op.outputs


def dynamic_stitch(indices, data, name=None):
    """merged[indices[m][i...]] = data[m][i...]; max(indices) + 1 rows, later inputs win where
    indices repeat, rows no index names are zeros."""
    indices, data = list(indices), list(data)
    if len(indices) != len(data) or not indices:
        raise ValueError("dynamic_stitch needs as many indices as data tensors (at least one), "
                         "got {} and {}".format(len(indices), len(data)))
    return _out(framework._op("DynamicStitch", [[_int32(i) for i in indices], data],
                              name=name))


def gather_nd(params, indices, name=None):
    """The slices of `params` named by the index tuples in the last dimension of `indices`."""
    return _out(framework._op("GatherNd", [params, indices], name=name))


def scatter_nd(indices, updates, shape, name=None):
    """Zeros of `shape` with `updates` added at the slices the index tuples name (repeated
    tuples add up)."""
    return _out(framework._op("ScatterNd", [indices, updates, _int_list(shape)], name=name))


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """A new dimension of size `depth` (at `axis`, default last) holding `on_value` (default 1)
    at each index and `off_value` (default 0) elsewhere; an index outside [0, depth) gives a row
    of `off_value`. The dtype is `dtype`, else that of on/off_value, else float32."""
    if dtype is None:  # TF1's rule: the dtype of on_value, else off_value, else float32.
        for v in (on_value, off_value):
            t = framework._as_tensor_or_none(v)
            if t is not None:
                dtype = t.dtype
                break
            if isinstance(v, (bool, np.bool_)):
                dtype = dtypes.bool
                break
            if isinstance(v, (int, float)):
                dtype = dtypes.int32 if isinstance(v, int) else dtypes.float32
                break
            if isinstance(v, (np.ndarray, np.generic)):
                dtype = dtypes.as_dtype(v.dtype)
                break
        else:
            dtype = dtypes.float32
    dtype = dtypes.as_dtype(dtype)
    on = constant(1 if on_value is None else on_value, dtype=dtype) \
        if framework._as_tensor_or_none(on_value) is None else on_value
    off = constant(0 if off_value is None else off_value, dtype=dtype) \
        if framework._as_tensor_or_none(off_value) is None else off_value
    attrs = {"axis": -1 if axis is None else int(axis)}
    return _out(framework._op("OneHot", [indices, np.int32(depth), on, off], attrs, name=name))


def tile(input, multiples, name=None):  # noqa: A002  (TensorFlow's argument name)
    """`input` repeated multiples[i] times along each dimension i."""
    return _out(framework._op("Tile", [input, _int_list(multiples)], name=name))


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    """`tensor` with paddings[i][0] values before and paddings[i][1] after it along each
    dimension i, all equal to `constant_values`. Only mode "CONSTANT" is supported."""
    if str(mode).upper() != "CONSTANT":
        raise NotImplementedError(
            "pad mode {!r} is not supported (only CONSTANT)".format(mode))
    t = framework.convert_to_tensor(tensor)
    paddings = np.asarray(paddings, dtype=np.int64) \
        if framework._as_tensor_or_none(paddings) is None else paddings
    if isinstance(paddings, np.ndarray) and paddings.size and paddings.max() < 2**31:
        paddings = paddings.astype(np.int32)
    value = framework._as_tensor_or_none(constant_values)
    if value is None:
        value = constant(constant_values, dtype=t.dtype)
    return _out(framework._op("Pad", [t, paddings, value], name=name))
