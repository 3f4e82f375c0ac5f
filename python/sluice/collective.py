"""Collective operations across devices (`sl.collective`), built into the graph: the group and
every transfer are fixed when the graph is built, and each transfer is an ordinary edge between
devices (a Send/Recv pair over the data plane on a cluster). See ops/collectives.h.

    with sl.device("/job:worker/task:0"): g0 = ...
    with sl.device("/job:worker/task:1"): g1 = ...
    m0, m1 = sl.collective.all_reduce([g0, g1], op="mean")   # each on its member's device

`devices` defaults to each tensor's requested device (they must differ). all_reduce is a ring
(reduce-scatter then all-gather over n near-equal chunks, each member sending 2(n-1)/n of the
tensor's bytes) or recursive doubling (log2 n whole-tensor exchanges: fewer hops, more bytes),
picked by a cost model from the size and the group unless `algorithm` names one;
all_reduce_in_buckets packs many tensors per member (gradients) into buckets fixed now.
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


def _run(kind, tensors, devices, reduction="sum", root=0, algorithm="auto"):
    graph = framework._graph_of(tensors)
    return _core._collective(graph, kind, tensors, devices, reduction, root, algorithm)


def all_reduce(tensors, op="sum", devices=None, algorithm="auto"):
    """Each member's copy of op(tensors), op "sum", "mean" or "max" (float32/float64, one
    shape). algorithm: "auto" (the cost model: choose_algorithm), "ring" or
    "recursive_doubling"."""
    tensors, devices = _members(tensors, devices)
    return _run("all_reduce", tensors, devices, op, algorithm=algorithm)


def all_reduce_in_buckets(tensor_lists, op="sum", devices=None, bucket_bytes=4 << 20,
                          algorithm="auto", return_buckets=False):
    """tensor_lists[d] is member d's tensors (same shapes and dtypes across members, in the
    order they are produced); returns result lists of the same layout. Consecutive tensors of
    one dtype share a bucket up to `bucket_bytes` (one bigger than that is a bucket alone);
    each bucket is flattened, concatenated, all-reduced and split back, and starts as soon as
    its own tensors exist. With return_buckets, also returns the buckets' index lists."""
    lists = [[framework.convert_to_tensor(t) for t in member] for member in tensor_lists]
    if devices is None:
        devices = [_members(member, None)[1][0] if member else "" for member in lists]
    devices = [str(d) for d in devices]
    graph = framework._graph_of([t for member in lists for t in member])
    out, buckets = _core._all_reduce_in_buckets(graph, lists, devices, op, int(bucket_bytes),
                                                algorithm)
    return (out, buckets) if return_buckets else out


def choose_algorithm(num_bytes, members):
    """The algorithm all_reduce's cost model picks: "ring" or "recursive_doubling"."""
    return _core._choose_all_reduce_algorithm(int(num_bytes), int(members))


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
