"""TensorFlow 1's `tf.losses`: scalar losses averaged over the batch (`sl.losses.*`).

    loss = sl.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)

Only a scalar `weights` is supported (TF's default reduction, SUM_BY_NONZERO_WEIGHTS, is then
`weights * mean`); a weights tensor raises ValueError.
"""

import numbers

from sluice import framework
from sluice import math_ops
from sluice import nn


def _scaled(loss, weights, fn):
    if not isinstance(weights, numbers.Real):
        raise ValueError("sl.losses.{}: only a scalar Python number is supported as weights, "
                         "got {!r}".format(fn, weights))
    mean = math_ops.reduce_mean(loss)
    return mean if weights == 1 else mean * float(weights)


def mean_squared_error(labels, predictions, weights=1.0, scope=None):
    """mean((predictions - labels)**2) over every element."""
    with framework.name_scope(scope or "mean_squared_error"):
        diff = math_ops.subtract(predictions, labels)
        return _scaled(math_ops.square(diff), weights, "mean_squared_error")


def softmax_cross_entropy(onehot_labels, logits, weights=1.0, label_smoothing=0, scope=None):
    """Mean over the batch of the cross-entropy of softmax(logits) against `onehot_labels`
    ([batch, classes]); with `label_smoothing` s the labels become labels*(1-s) + s/classes."""
    with framework.name_scope(scope or "softmax_cross_entropy_loss"):
        labels = framework.convert_to_tensor(onehot_labels)
        if label_smoothing:
            shape = labels.shape
            if shape is None or shape[-1] is None:
                raise ValueError("label_smoothing needs the number of classes (the last "
                                 "dimension of onehot_labels) known when building: " +
                                 labels.name)
            s = float(label_smoothing)
            labels = labels * (1.0 - s) + s / shape[-1]
        per_row = nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return _scaled(per_row, weights, "softmax_cross_entropy")


def sparse_softmax_cross_entropy(labels, logits, weights=1.0, scope=None):
    """Mean over the batch of -log(softmax(logits)[i, labels[i]])."""
    with framework.name_scope(scope or "sparse_softmax_cross_entropy_loss"):
        per_row = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return _scaled(per_row, weights, "sparse_softmax_cross_entropy")


__all__ = ["mean_squared_error", "softmax_cross_entropy", "sparse_softmax_cross_entropy"]
