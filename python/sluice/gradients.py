"""Symbolic gradients: `sl.gradients(ys, xs)` adds the backward graph (ops/gradients.h)."""

from sluice import framework
from sluice._core import core as _core


def _as_list(values):
    return list(values) if isinstance(values, (list, tuple)) else [values]


def gradients(ys, xs, grad_ys=None, name="gradients"):
    """The gradients of sum(ys) with respect to each of `xs`, as new graph nodes.

    Args:
      ys: a Tensor or list of Tensors to differentiate (floating dtype).
      xs: a Tensor, Variable, or list of them.
      grad_ys: optional list, one Tensor per y, of the y's shape: computes
        sum_j <dys[j]/dx, grad_ys[j]> instead (ones by default).
      name: name scope of the new nodes (made unique).

    Returns:
      A list with one Tensor per x, of its shape, or None where ys do not depend on that x.

    Raises:
      sluice.errors.InvalidArgumentError: e.g. an op on the path has no gradient function
        (the message names the node and op). After such an error the graph can no longer
        build gradients, variables or optimizer steps: build a new graph.
    """
    ys, xs = _as_list(ys), _as_list(xs)
    graph = framework._graph_of(ys + xs)
    return _core._gradients(graph, ys, xs, None if grad_ys is None else _as_list(grad_ys), name)
