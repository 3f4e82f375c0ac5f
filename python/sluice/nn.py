"""Neural-network ops (`sl.nn.*`): activations, softmax and cross-entropy losses, conv2d and
pooling (NHWC), dropout, moments and batch normalization, bias_add, l2_loss, embedding_lookup,
in_top_k.

    logits = sl.matmul(h, w)
    loss = sl.reduce_mean(
        sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
"""

import numpy as np

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import math_ops
from sluice import variables

sigmoid = math_ops.sigmoid
tanh = math_ops.tanh


def _out(op, index=0):
    return op.outputs[index]


def relu(features, name=None):
    """max(features, 0) elementwise."""
    return _out(framework._op("Relu", [features], name=name))


def _check_last_axis(axis, fn):
    if axis not in (-1, None):
        raise ValueError("{} supports only the last axis (axis=-1), got {}".format(fn, axis))


def softmax(logits, axis=-1, name=None):
    """exp(logits) / sum(exp(logits)) over the last axis, stable for large logits."""
    _check_last_axis(axis, "softmax")
    return _out(framework._op("Softmax", [logits], name=name))


def log_softmax(logits, axis=-1, name=None):
    """logits - log(sum(exp(logits))) over the last axis, stable for large logits."""
    _check_last_axis(axis, "log_softmax")
    return _out(framework._op("LogSoftmax", [logits], name=name))


def _named_only(fn, args):
    """TensorFlow (since 1.0) refuses positional arguments to its cross entropies: the order
    changed once, and `f(y, y_)` with logits first trains silently to a wrong answer."""
    if args:
        raise ValueError("Only call `{}` with named arguments (labels=..., logits=..., ...), "
                         "got {} positional".format(fn, len(args)))


def softmax_cross_entropy_with_logits(*args, labels=None, logits=None, dim=-1, axis=None,
                                      name=None):
    """Per-row cross-entropy between softmax(logits) and the distributions `labels`.

    Called with named arguments only (ValueError otherwise, as in TensorFlow). Backpropagation
    goes into `logits` only: the labels are held constant (TensorFlow 1's rule; its `_v2` form
    differs there).

    Args:
      labels: [batch, classes] probabilities (each row sums to 1), same dtype as logits.
      logits: [batch, classes] unscaled log-probabilities.
      dim, axis: the class axis; only the last (-1) is supported.
    Returns:
      The [batch] losses.
    """
    fn = "softmax_cross_entropy_with_logits"
    _named_only(fn, args)
    if labels is None or logits is None:
        raise ValueError(fn + " needs labels= and logits=")
    _check_last_axis(dim if axis is None else axis, fn)
    labels = array_ops.stop_gradient(labels)
    return _out(framework._op("SoftmaxCrossEntropyWithLogits", [logits, labels], name=name))


def sparse_softmax_cross_entropy_with_logits(*args, labels=None, logits=None, name=None):
    """Per-row cross-entropy of softmax(logits) against class indices.

    Called with named arguments only (ValueError otherwise, as in TensorFlow).

    Args:
      labels: [batch] class indices (int32 or int64) in [0, classes).
      logits: [batch, classes] unscaled log-probabilities.
    Returns:
      The [batch] losses, -log(softmax(logits)[i, labels[i]]).
    """
    fn = "sparse_softmax_cross_entropy_with_logits"
    _named_only(fn, args)
    if labels is None or logits is None:
        raise ValueError(fn + " needs labels= and logits=")
    return _out(framework._op("SparseSoftmaxCrossEntropyWithLogits", [logits, labels], name=name))


def _spatial(value, what):
    """TensorFlow's forms of strides, ksize and dilations: an int, [h, w] or [1, h, w, 1]."""
    if isinstance(value, (int, np.integer)):
        return [1, int(value), int(value), 1]
    value = [int(v) for v in value]
    if len(value) == 1:
        return [1, value[0], value[0], 1]
    if len(value) == 2:
        return [1, value[0], value[1], 1]
    if len(value) == 4:
        return value
    raise ValueError("{} must be an int, [h, w] or [1, h, w, 1], got {}".format(what, value))


def _check_nhwc(data_format):
    if data_format not in (None, "NHWC"):
        raise ValueError("only data_format='NHWC' is supported, got {!r}".format(data_format))


def conv2d(input=None, filter=None, strides=None, padding=None, use_cudnn_on_gpu=True,
           data_format="NHWC", dilations=None, name=None, filters=None):
    """2-D convolution of `input` [batch, height, width, in] with `filter` [h, w, in, out].

    `strides` and `dilations`: an int, [h, w] or [1, h, w, 1]; `padding` "SAME" (output
    ceil(in / stride)) or "VALID". `filters` is TensorFlow 2's name of `filter`.
    """
    del use_cudnn_on_gpu  # CPU kernels only.
    _check_nhwc(data_format)
    if filters is not None:
        filter = filters
    if strides is None or padding is None:
        raise ValueError("conv2d needs strides= and padding=")
    attrs = {"strides": _spatial(strides, "strides"), "padding": str(padding).upper(),
             "dilations": _spatial(dilations or 1, "dilations")}
    return _out(framework._op("Conv2D", [input, filter], attrs, name=name))


def _pool(op_type, value, ksize, strides, padding, data_format, name):
    _check_nhwc(data_format)
    attrs = {"ksize": _spatial(ksize, "ksize"), "strides": _spatial(strides, "strides"),
             "padding": str(padding).upper()}
    return _out(framework._op(op_type, [value], attrs, name=name))


def max_pool(value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None,
             input=None):
    """The maximum of each `ksize` window of an NHWC tensor, windows every `strides`."""
    return _pool("MaxPool", value if value is not None else input, ksize, strides, padding,
                 data_format, name)


def avg_pool(value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None,
             input=None):
    """The mean of each `ksize` window of an NHWC tensor; padding is not counted."""
    return _pool("AvgPool", value if value is not None else input, ksize, strides, padding,
                 data_format, name)


def bias_add(value, bias, data_format=None, name=None):
    """`value` plus the vector `bias` along its last dimension."""
    _check_nhwc(data_format)
    v = framework.convert_to_tensor(value)
    b = framework.convert_to_tensor(bias, dtype=v.dtype)
    if b.shape is not None and len(b.shape) != 1:
        raise ValueError("bias must be a vector, got shape {} ({})".format(b.shape, b.name))
    if (b.shape is not None and v.shape is not None and v.shape and v.shape[-1] is not None
            and b.shape[0] is not None and v.shape[-1] != b.shape[0]):
        raise ValueError("bias of size {} does not match the last dimension of {} (shape {})"
                         .format(b.shape[0], v.name, v.shape))
    return math_ops.add(v, b, name=name)


def xw_plus_b(x, weights, biases, name=None):
    """matmul(x, weights) + biases."""
    return bias_add(math_ops.matmul(x, weights), biases, name=name)


def l2_loss(t, name=None):
    """sum(t ** 2) / 2."""
    return math_ops.multiply(math_ops.reduce_sum(math_ops.square(t)), 0.5, name=name)


def sigmoid_cross_entropy_with_logits(*args, labels=None, logits=None, name=None):
    """Elementwise logistic loss of `logits` against `labels` in [0, 1], computed stably as
    max(x, 0) - x * z + log(1 + exp(-|x|)). Named arguments only, like the softmax forms."""
    _named_only("sigmoid_cross_entropy_with_logits", args)
    x = framework.convert_to_tensor(logits)
    z = array_ops.stop_gradient(framework.convert_to_tensor(labels, dtype=x.dtype))
    return math_ops.add(
        math_ops.subtract(math_ops.maximum(x, 0.0), math_ops.multiply(x, z)),
        math_ops.log(math_ops.add(1.0, math_ops.exp(math_ops.negative(math_ops.abs(x))))),
        name=name)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """(mean, variance) of `x` over `axes`."""
    del shift  # Accepted for TensorFlow 1 compatibility; the result does not depend on it.
    keep = bool(keepdims if keepdims is not None else keep_dims)
    mean = math_ops.reduce_mean(x, axes, keepdims=True)
    variance = math_ops.reduce_mean(
        math_ops.square(math_ops.subtract(x, array_ops.stop_gradient(mean))), axes,
        keepdims=keep)
    if not keep:
        mean = math_ops.reduce_mean(x, axes)
    return mean, variance


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """(x - mean) / sqrt(variance + variance_epsilon) * scale + offset (offset and scale may
    be None)."""
    inv = math_ops.rsqrt(math_ops.add(variance, variance_epsilon))
    if scale is not None:
        inv = math_ops.multiply(inv, scale)
    y = math_ops.multiply(math_ops.subtract(x, mean), inv)
    return y if offset is None else math_ops.add(y, offset, name=name)


def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None):
    """`x` with each element kept with probability keep_prob (= 1 - rate) and scaled by
    1 / keep_prob, else 0. A nonzero `seed` makes the mask reproducible."""
    from sluice import random_ops  # random_ops imports math_ops, which imports this package.

    if (keep_prob is None) == (rate is None):
        raise ValueError("pass exactly one of keep_prob= and rate=")
    if keep_prob is None:
        keep_prob = 1.0 - rate
    t = framework.convert_to_tensor(x)
    if isinstance(keep_prob, (int, float)):
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError("keep_prob must be in (0, 1], got {}".format(keep_prob))
        if keep_prob == 1.0:
            return array_ops.identity(t, name=name)
    shape = noise_shape if noise_shape is not None else array_ops.shape(t)
    with framework.get_default_graph().name_scope(name or "dropout"):
        keep = framework.convert_to_tensor(keep_prob, dtype=t.dtype)
        uniform = random_ops.random_uniform(shape, dtype=t.dtype, seed=seed)
        mask = math_ops.floor(math_ops.add(uniform, keep))
        return math_ops.multiply(math_ops.divide(t, keep), mask)


def in_top_k(predictions, targets, k, name=None):
    """Whether each row's target class is among its k highest predictions ([batch] bool).
    Ties count as in (TF's rule: fewer than k classes score strictly higher); an out-of-range
    target or a non-finite score is not."""
    return _out(framework._op("InTopK", [predictions, targets], {"k": int(k)}, name=name))


def embedding_lookup(params, ids, partition_strategy=None, name=None, validate_indices=True,
                     max_norm=None):
    """Rows `ids` of `params` (a tensor or Variable, a list of shards split along dimension 0,
    or a PartitionedVariable): shape ids.shape + params.shape[1:].

    Each shard's gather runs on its shard's device, so only the looked-up rows leave a
    parameter server; with several shards each id goes to its own shard only
    (DynamicPartition), and the rows come back in the order of `ids` (DynamicStitch).
    `partition_strategy` "mod" puts id i in shard i % n at row i // n, "div" gives each shard a
    contiguous range (the first ones one row more when the rows do not divide evenly), as TF1
    does; the default is "div" for a PartitionedVariable (so the lookup equals a gather from
    the whole variable) and TF1's "mod" for a list. `max_norm` clips each looked-up row to that
    L2 norm. Plain SGD updates only the looked-up rows (ops/optimizers.h)."""
    del validate_indices  # Indices are always checked.
    partitioned = isinstance(params, variables.PartitionedVariable)
    if partitioned and params.axis != 0:
        raise ValueError("embedding_lookup needs a variable partitioned along dimension 0; {} "
                         "is cut along {}".format(params.name, params.axis))
    if partition_strategy is None:
        partition_strategy = "div" if partitioned else "mod"
    if partition_strategy not in ("mod", "div"):
        raise ValueError("partition_strategy must be 'mod' or 'div', got {!r}".format(
            partition_strategy))
    shards = list(params) if partitioned or isinstance(params, (list, tuple)) else [params]
    if not shards:
        raise ValueError("embedding_lookup needs at least one params tensor")
    with framework.get_default_graph().name_scope(name or "embedding_lookup"):
        if len(shards) == 1:
            rows = _gather_on_shard(shards[0], ids)
        else:
            rows = _sharded_lookup(shards, ids, partition_strategy)
        if max_norm is not None:
            rows = _clip_rows(rows, ids, max_norm)
        return rows


def _gather_on_shard(shard, ids):
    """gather(shard, ids) on the shard's device when it is a variable placed somewhere."""
    tensor = framework.convert_to_tensor(shard)
    device = tensor.op.device if tensor.op.type == "Variable" else ""
    if not device:
        return array_ops.gather(shard, ids)
    with tensor.graph.device(device):
        return array_ops.gather(shard, ids)


def _sharded_lookup(shards, ids, strategy):
    """Each id's row from its own shard: ids partitioned by shard, one gather per shard, the
    rows stitched back in the order of `ids`."""
    n = len(shards)
    sizes = []
    for s in shards:
        dims = framework.convert_to_tensor(s).shape
        if dims is None or dims[0] is None:
            raise ValueError("embedding_lookup over shards needs each shard's row count to be "
                             "known; {} has shape {}".format(framework.convert_to_tensor(s).name,
                                                             dims))
        sizes.append(int(dims[0]))
    ids = framework.convert_to_tensor(ids)
    if ids.shape is None:
        raise ValueError("embedding_lookup over shards needs ids of known rank: " + ids.name)
    flat = array_ops.reshape(ids, [-1])
    if flat.dtype != dtypes.int64:
        flat = array_ops.cast(flat, dtypes.int64)
    if strategy == "mod":
        shard_of = math_ops.floormod(flat, np.int64(n))
        row_in = math_ops.floordiv(flat, np.int64(n))
        # An id past the end lands in a shard as a row past that shard's end: its gather names it.
    else:
        total = sum(sizes)
        big, extras = total // n + 1, total % n  # The first `extras` shards hold `big` rows.
        cut = np.int64(extras * big)
        small = max(total // n, 1)
        shard_of = math_ops.where(math_ops.less(flat, cut),
                                  math_ops.floordiv(flat, np.int64(big)),
                                  math_ops.floordiv(flat - cut, np.int64(small)) + np.int64(extras))
        # An id past the end goes to the last shard, as a row past its end (its gather names it).
        shard_of = math_ops.minimum(shard_of, np.int64(n - 1))
        row_in = math_ops.where(math_ops.less(shard_of, np.int64(extras)),
                                flat - shard_of * np.int64(big),
                                flat - cut - (shard_of - np.int64(extras)) * np.int64(small))
    shard_of = array_ops.cast(shard_of, dtypes.int32)
    rows_in = array_ops.dynamic_partition(row_in, shard_of, n)
    positions = array_ops.dynamic_partition(
        array_ops.range_(array_ops.size(flat)), shard_of, n)
    found = [_gather_on_shard(shard, rows) for shard, rows in zip(shards, rows_in)]
    merged = array_ops.dynamic_stitch(positions, found)
    row_dims = [None if d is None else int(d) for d in found[0].shape[1:]]
    id_dims = [None if d is None else int(d) for d in ids.shape]
    if None not in row_dims and id_dims.count(None) <= 1:
        # A constant shape keeps the result's static shape known.
        return array_ops.reshape(merged, [-1 if d is None else d for d in id_dims + row_dims])
    row_shape = array_ops.slice(array_ops.shape(found[0]), [1], [-1])
    return array_ops.reshape(merged, array_ops.concat([array_ops.shape(ids), row_shape], 0))


def _clip_rows(rows, ids, max_norm):
    """Each embedding row (the dimensions after ids') scaled to an L2 norm of at most max_norm."""
    rows = framework.convert_to_tensor(rows)
    ids_rank = len(framework.convert_to_tensor(ids).shape or ())
    axes = list(range(ids_rank, len(rows.shape)))
    return math_ops.clip_by_norm(rows, max_norm, axes=axes)
