"""Neural-network ops: activations, softmax and cross-entropy losses (`sl.nn.*`).

    logits = sl.matmul(h, w)
    loss = sl.reduce_mean(
        sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
"""

from sluice import array_ops
from sluice import framework
from sluice import math_ops

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
