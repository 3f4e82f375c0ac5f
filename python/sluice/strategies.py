"""Synchronous data-parallel training strategies (in-graph replication): one client builds one
model per worker device, each fed its own shard, and one `sess.run(train_op)` is one
synchronous step of every worker.

BSPStrategy (bulk synchronous SGD, TRAINING.md section 2):
    w <- w - eta * (1/N) * sum_i g_i(w)
Each replica keeps its own copy of every variable on its device ("replica_<i>/<name>", all
initialised from replica 0's initial values); every step the replicas' gradients are averaged
by a ring all-reduce (sl.collective) and each replica applies the same update with its own
optimizer slots, so the copies stay equal. N workers with batch b each compute exactly the step
of one worker with batch N*b when the loss is a batch mean.

    devices = ["/job:worker/task:0", "/job:worker/task:1"]
    bsp = sl.train.BSPStrategy(devices)
    def model(x, y):                       # variables through sl.get_variable
        w = sl.get_variable("w", [784, 10], initializer=sl.zeros_initializer())
        return sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=sl.matmul(x, w)))
    inputs = [(sl.placeholder(sl.float32, [None, 784]), sl.placeholder(sl.int64, [None]))
              for _ in devices]
    train_op, loss = bsp.minimize(sl.train.GradientDescentOptimizer(0.1), model, inputs)
"""

from sluice import collective
from sluice import framework
from sluice.gradients import gradients as _gradients
from sluice import math_ops
from sluice import variable_sharing as vs  # noqa: I100


class BSPStrategy:
    """Bulk synchronous SGD over `devices` with gradients averaged by all-reduce."""

    def __init__(self, devices):
        self.devices = [str(d) for d in devices]
        if len(set(self.devices)) != len(self.devices) or not self.devices:
            raise ValueError("BSPStrategy needs distinct devices, got {}".format(devices))
        self.replica_variables = []  # Per replica, its variables in creation order.

    def minimize(self, optimizer, model_fn, inputs, name="bsp"):
        """Builds the replicas (model_fn(*inputs[i]) on device i, returning its loss) and one
        training step; returns (train_op, the replicas' mean loss)."""
        if len(inputs) != len(self.devices):
            raise ValueError("BSPStrategy: {} input tuples for {} devices".format(
                len(inputs), len(self.devices)))
        graph = framework.get_default_graph()
        first = {}  # Base name -> replica 0's Variable.
        losses = []
        self.replica_variables = []
        for i, device in enumerate(self.devices):
            mine = []

            def getter(real_getter, name, *args, _i=i, _mine=mine, **kwargs):
                base = name.split("/", 1)[1] if "/" in name else name
                if _i > 0:
                    if base not in first:
                        raise ValueError("replica {} creates variable {!r}, which replica 0 did "
                                         "not".format(_i, base))
                    kwargs["initializer"] = first[base].initial_value
                    kwargs["shape"] = None
                var = real_getter(name, *args, **kwargs)
                if _i == 0:
                    first[base] = var
                if var not in _mine:
                    _mine.append(var)
                return var

            with graph.device(device), vs.variable_scope("{}_replica_{}".format(name, i),
                                                         custom_getter=getter):
                losses.append(model_fn(*inputs[i]))
            if len(mine) != len(first):
                raise ValueError("replica {} made {} variables, replica 0 made {}".format(
                    i, len(mine), len(first)))
            self.replica_variables.append(mine)
        grads = [_gradients(loss, vars_) for loss, vars_ in
                 zip(losses, self.replica_variables)]
        pairs = []
        for k in range(len(first)):
            per_replica = [grads[i][k] for i in range(len(self.devices))]
            if any(g is None for g in per_replica):
                continue  # The loss does not depend on this variable.
            averaged = collective.all_reduce(per_replica, op="mean", devices=self.devices)
            pairs += [(averaged[i], self.replica_variables[i][k])
                      for i in range(len(self.devices))]
        train_op = optimizer.apply_gradients(pairs, name=name)
        with graph.name_scope(name + "_loss"):
            mean_loss = math_ops.multiply(math_ops.add_n(losses), 1.0 / len(losses))
        return train_op, mean_loss
