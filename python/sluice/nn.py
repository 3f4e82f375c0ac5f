"""Neural-network ops: activations, softmax and cross-entropy losses (`sl.nn.*`).

    logits = sl.matmul(h, w)
    loss = sl.reduce_mean(
        sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
"""

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


def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, name=None):
    """Per-row cross-entropy between softmax(logits) and the distributions `labels`.

    Args:
      labels: [batch, classes] probabilities (each row sums to 1), same dtype as logits.
      logits: [batch, classes] unscaled log-probabilities.
    Returns:
      The [batch] losses.
    """
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs labels= and logits=")
    _check_last_axis(axis, "softmax_cross_entropy_with_logits")
    return _out(framework._op("SoftmaxCrossEntropyWithLogits", [logits, labels], name=name))


def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Per-row cross-entropy of softmax(logits) against class indices.

    Args:
      labels: [batch] class indices (int32 or int64) in [0, classes).
      logits: [batch, classes] unscaled log-probabilities.
    Returns:
      The [batch] losses, -log(softmax(logits)[i, labels[i]]).
    """
    if labels is None or logits is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs labels= and logits=")
    return _out(framework._op("SparseSoftmaxCrossEntropyWithLogits", [logits, labels], name=name))
