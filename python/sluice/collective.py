"""Collective operations across devices (`sl.collective`), built into the graph: the group and
every transfer are fixed when the graph is built, and each transfer is an ordinary edge between
devices (a Send/Recv pair over the data plane on a cluster). See ops/collectives.h.

    with sl.device("/job:worker/task:0"): g0 = ...
    with sl.device("/job:worker/task:1"): g1 = ...
    m0, m1 = sl.collective.all_reduce([g0, g1], op="mean")   # each on its member's device

`devices` defaults to each tensor's requested device (they must differ). all_reduce is a ring:
reduce-scatter then all-gather over n near-equal chunks, each member sending 2(n-1)/n of the
tensor's bytes.
"""

from sluice import framework
from sluice._core import core as _core


def _members(tensors, devices):
    tensors = [framework.convert_to_tensor(t) for t in tensors]
    if devices is None:
        devices = [t.op.device for t in tensors]
        if any(not d for d in devices):
            raise ValueError("collective: every tensor needs a device (or pass devices=)")
    return tensors, [str(d) for d in devices]


def _run(kind, tensors, devices, reduction="sum", root=0):
    graph = framework._graph_of(tensors)
    return _core._collective(graph, kind, tensors, devices, reduction, root)


def all_reduce(tensors, op="sum", devices=None):
    """Each member's copy of op(tensors), op "sum", "mean" or "max" (float32/float64, one
    shape)."""
    tensors, devices = _members(tensors, devices)
    return _run("all_reduce", tensors, devices, op)


def reduce_scatter(tensors, op="sum", devices=None):
    """Member i gets chunk i of op(tensors) flattened (n near-equal chunks, the first ones one
    element longer when the size does not divide)."""
    tensors, devices = _members(tensors, devices)
    return _run("reduce_scatter", tensors, devices, op)


def all_gather(tensors, devices=None):
    """Each member's copy of the tensors concatenated along dimension 0, in member order."""
    tensors, devices = _members(tensors, devices)
    return _run("all_gather", tensors, devices)


def broadcast(tensor, devices, root=0):
    """A copy of `tensor` (member `root`'s) on every device of `devices`."""
    tensor = framework.convert_to_tensor(tensor)
    return _run("broadcast", [tensor], [str(d) for d in devices], root=root)
