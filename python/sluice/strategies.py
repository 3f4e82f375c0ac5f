"""Synchronous data-parallel training strategies (in-graph replication): one client builds one
model per worker device, each fed its own shard, and one `sess.run(train_op)` is one
synchronous step of every worker. BSPStrategy, ModelAveragingStrategy,
ElasticAveragingStrategy and ADMMStrategy (each class states its equations; docs/strategies.md).

BSPStrategy (bulk synchronous SGD, TRAINING.md section 2):
    w <- w - eta * (1/N) * sum_i g_i(w)
Each replica keeps its own copy of every variable on its device ("replica_<i>/<name>", all
initialised from replica 0's initial values); every step the replicas' gradients are averaged
by all-reduces over gradient buckets (sl.collective) and each replica applies the same update
with its own optimizer slots, so the copies stay equal; or, with `parameter_devices`, the
variables live once on parameter servers and the gradients are averaged there. N workers with
batch b each compute exactly the step of one worker with batch N*b when the loss is a batch
mean.

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

import numpy as np

from sluice import array_ops
from sluice import collective
from sluice import framework
from sluice.gradients import gradients as _gradients
from sluice import math_ops
from sluice import variables
from sluice import variable_sharing as vs


def _replicate(devices, model_fn, inputs, name):
    """model_fn(*inputs[i]) on each device, each replica with its own copy of every variable
    made with get_variable ("<name>_replica_<i>/<var>"), all initialised from replica 0's initial
    values. Returns (losses, per-replica variable lists in creation order)."""
    if len(inputs) != len(devices):
        raise ValueError("{} input tuples for {} devices".format(len(inputs), len(devices)))
    graph = framework.get_default_graph()
    first = {}  # Base name -> replica 0's Variable.
    losses, replica_variables = [], []
    for i, device in enumerate(devices):
        mine = []

        def getter(real_getter, var_name, *args, _i=i, _mine=mine, **kwargs):
            base = var_name.split("/", 1)[1] if "/" in var_name else var_name
            if _i > 0:
                if base not in first:
                    raise ValueError("replica {} creates variable {!r}, which replica 0 did "
                                     "not".format(_i, base))
                kwargs["initializer"] = first[base].initial_value
                kwargs["shape"] = None
            var = real_getter(var_name, *args, **kwargs)
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
        replica_variables.append(mine)
    return losses, replica_variables


def _mean(graph, losses, name):
    with graph.name_scope(name + "_loss"):
        return math_ops.multiply(math_ops.add_n(losses), 1.0 / len(losses))


def _step_counter(graph, device, name):
    """A checkpointed count of the local steps taken (an int64 variable on `device`), so a
    restored strategy resumes its communication schedule where the checkpoint left it."""
    with graph.device(device):
        return variables.Variable(np.int64(0), trainable=False, name=name + "_local_steps")


def _check_devices(devices, what):
    devices = [str(d) for d in devices]
    if not devices or len(set(devices)) != len(devices):
        raise ValueError("{} needs distinct devices, got {}".format(what, devices))
    return devices


def _replicate_shared(devices, parameter_devices, model_fn, inputs, name):
    """model_fn(*inputs[i]) on each device, every replica reading one copy of each variable,
    placed on the parameter device holding the fewest bytes so far (in creation order).
    Returns (losses, the variables in creation order, their parameter devices)."""
    if len(inputs) != len(devices):
        raise ValueError("{} input tuples for {} devices".format(len(inputs), len(devices)))
    graph = framework.get_default_graph()
    shared, placed = {}, []  # Base name -> Variable; (variable, device) in creation order.
    load = {d: 0 for d in parameter_devices}
    losses = []
    for i, device in enumerate(devices):
        def getter(real_getter, var_name, *args, _i=i, **kwargs):
            if var_name in shared:
                return shared[var_name]
            if _i > 0:
                raise ValueError("replica {} creates variable {!r}, which replica 0 did "
                                 "not".format(_i, var_name))
            target = min(parameter_devices, key=lambda d: load[d])
            with graph.device(target):
                var = real_getter(var_name, *args, **kwargs)
            load[target] += (int(np.prod(var.get_shape().as_list())) *
                             var.dtype.as_numpy_dtype.itemsize)
            shared[var_name] = var
            placed.append((var, target))
            return var

        with graph.device(device), vs.variable_scope("{}_shared".format(name),
                                                     custom_getter=getter):
            with graph.name_scope("{}_replica_{}".format(name, i)):
                losses.append(model_fn(*inputs[i]))
    return losses, [v for v, _ in placed], [d for _, d in placed]


class BSPStrategy:
    """Bulk synchronous SGD over `devices`, in either topology of the chapter.

    All-reduce (the default): every replica keeps its own copy of every variable; the
    replicas' gradients, in the order the backward pass produces them (the last layer's
    first), are packed into buckets of about `bucket_bytes` fixed when the graph is built, each
    bucket averaged by one all-reduce (`algorithm`: "auto" lets the cost model pick ring or
    recursive doubling per bucket; sl.collective.all_reduce_in_buckets), and each replica
    applies the same update with its own optimizer slots, so the copies stay equal.

    Parameter server (`parameter_devices` given): one copy of each variable on a parameter
    device (the one holding the fewest bytes when it is created); every replica reads it,
    the replicas' gradients are averaged on the variable's device and applied there once
    (the optimizer's slots live beside the variable).

    Either way w <- w - eta * (1/N) * sum_i g_i(w), and N workers with batch b each take the
    step of one worker with batch N*b when the loss is a batch mean."""

    def __init__(self, devices, parameter_devices=None, bucket_bytes=4 << 20, algorithm="auto"):
        self.devices = _check_devices(devices, "BSPStrategy")
        self.parameter_devices = (None if parameter_devices is None else
                                  _check_devices(parameter_devices, "BSPStrategy's parameters"))
        self.bucket_bytes = int(bucket_bytes)
        self.algorithm = algorithm
        self.replica_variables = []  # Per replica, its variables in creation order.
        self.variables = []  # Parameter-server form: the shared variables.
        self.buckets = []  # All-reduce form: the buckets' gradient indices (production order).
        self.replica_losses = []  # Each replica's loss on its shard.

    def minimize(self, optimizer, model_fn, inputs, name="bsp"):
        """Builds the replicas (model_fn(*inputs[i]) on device i, returning its loss) and one
        training step; returns (train_op, the replicas' mean loss)."""
        if self.parameter_devices is not None:
            return self._minimize_on_parameter_servers(optimizer, model_fn, inputs, name)
        graph = framework.get_default_graph()
        losses, self.replica_variables = _replicate(self.devices, model_fn, inputs, name)
        self.replica_losses = losses
        n = len(self.devices)
        grads = [_gradients(loss, vars_) for loss, vars_ in
                 zip(losses, self.replica_variables)]
        # Gradients come out of the backward pass last layer first: reverse creation order.
        used = [k for k in reversed(range(len(self.replica_variables[0])))
                if all(grads[i][k] is not None for i in range(n))]
        lists = []
        for i in range(n):
            # A gradient's static shape can be partial; the variable's is known (a view).
            lists.append([array_ops.reshape(
                grads[i][k], self.replica_variables[0][k].get_shape().as_list())
                for k in used])
        averaged, self.buckets = collective.all_reduce_in_buckets(
            lists, op="mean", devices=self.devices, bucket_bytes=self.bucket_bytes,
            algorithm=self.algorithm, return_buckets=True)
        pairs = [(averaged[i][j], self.replica_variables[i][k])
                 for i in range(n) for j, k in enumerate(used)]
        train_op = optimizer.apply_gradients(pairs, name=name)
        return train_op, _mean(graph, losses, name)

    def _minimize_on_parameter_servers(self, optimizer, model_fn, inputs, name):
        graph = framework.get_default_graph()
        losses, self.variables, homes = _replicate_shared(
            self.devices, self.parameter_devices, model_fn, inputs, name)
        self.replica_losses = losses
        self.replica_variables = [self.variables for _ in self.devices]
        grads = [_gradients(loss, self.variables) for loss in losses]
        pairs = []
        for k, (var, home) in enumerate(zip(self.variables, homes)):
            per_replica = []
            for device, g in zip(self.devices, grads):
                if g[k] is not None:
                    with graph.device(device):  # The variable's static shape, on the worker.
                        per_replica.append(array_ops.reshape(g[k], var.get_shape().as_list()))
            if not per_replica:
                continue
            with graph.device(home), graph.name_scope("{}_aggregate".format(name)):
                mean = math_ops.multiply(math_ops.add_n(per_replica),
                                         1.0 / len(self.devices))
            pairs.append((mean, var))
        train_op = optimizer.apply_gradients(pairs, name=name)
        return train_op, _mean(graph, losses, name)


class ModelAveragingStrategy:
    """Local SGD with communication frequency K (TRAINING.md section 2): every replica takes
    `period` local optimizer steps on its own shard from the common point, then all set
    x_i <- (1/N) sum_j x_j (a ring all-reduce of the variables). period=1 with plain SGD is
    BSP. `minimize` returns (train_op, average_op, mean loss); `run_step(sess, feed)` runs the
    local step and, every `period`-th call, the averaging."""

    def __init__(self, devices, period):
        self.devices = _check_devices(devices, "ModelAveragingStrategy")
        if int(period) < 1:
            raise ValueError("period must be >= 1, got {}".format(period))
        self.period = int(period)
        self.replica_variables = []

    def minimize(self, optimizer, model_fn, inputs, name="model_averaging"):
        graph = framework.get_default_graph()
        losses, self.replica_variables = _replicate(self.devices, model_fn, inputs, name)
        pairs = []
        for loss, vars_ in zip(losses, self.replica_variables):
            pairs += [(g, v) for g, v in zip(_gradients(loss, vars_), vars_) if g is not None]
        self.local_steps = _step_counter(graph, self.devices[0], name)
        self._count = variables.assign_add(self.local_steps, np.int64(1))
        self.train_op = array_ops.group(optimizer.apply_gradients(pairs, name=name), self._count)
        assigns = []
        for k in range(len(self.replica_variables[0])):
            copies = [self.replica_variables[i][k] for i in range(len(self.devices))]
            averaged = collective.all_reduce(copies, op="mean", devices=self.devices)
            for var, avg, device in zip(copies, averaged, self.devices):
                with graph.device(device):
                    assigns.append(variables.assign(var, avg))
        self.average_op = array_ops.group(*assigns, name=name + "_average")
        self.loss = _mean(graph, losses, name)
        return self.train_op, self.average_op, self.loss

    def run_step(self, sess, feed_dict):
        """One local step of every replica (returns the mean loss before it), then the
        averaging when this is a multiple of `period` steps."""
        loss, _, steps = sess.run([self.loss, self.train_op, self._count], feed_dict)
        if steps % self.period == 0:
            sess.run(self.average_op)
        return loss


class ElasticAveragingStrategy:
    """Synchronous elastic averaging SGD (Zhang, Choromanska, LeCun 2015; TRAINING.md section
    2). Each replica keeps its variables x_i and a copy of the center x~; every `period` steps,
    with all terms taken before the step,
        x_i <- x_i - eta * g_i(x_i) - alpha * (x_i - x~)
        x~  <- x~ + alpha * sum_i (x_i - x~)
    (the sum by a ring all-reduce, so every copy of the center stays equal); other steps are
    plain local steps x_i <- x_i - eta * g_i(x_i). alpha is the moving rate eta*rho, as in the
    paper (not TensorFlow's beta/tau/N). `minimize` returns (train_op, elastic_step_op, loss);
    `run_step(sess, feed)` picks the right one."""

    def __init__(self, devices, moving_rate, period=1):
        self.devices = _check_devices(devices, "ElasticAveragingStrategy")
        self.alpha = float(moving_rate)
        self.period = int(period)
        if self.period < 1:
            raise ValueError("period must be >= 1, got {}".format(period))
        self.replica_variables, self.center_variables = [], []

    def minimize(self, optimizer, model_fn, inputs, name="easgd"):
        from sluice import train  # train imports this module lazily.

        if type(optimizer) is not train.GradientDescentOptimizer:
            raise TypeError("ElasticAveragingStrategy applies the paper's equations with plain "
                            "SGD: pass a GradientDescentOptimizer")
        graph = framework.get_default_graph()
        losses, self.replica_variables = _replicate(self.devices, model_fn, inputs, name)
        n = len(self.devices)
        self.center_variables = []
        for i, device in enumerate(self.devices):
            with graph.device(device):
                self.center_variables.append([
                    variables.Variable(v.initial_value, trainable=False,
                                       name="{}_center_{}/{}".format(
                                           name, i, v.op.name.split("/", 1)[1]))
                    for v in self.replica_variables[i]])
        grads = [_gradients(loss, vars_) for loss, vars_ in zip(losses, self.replica_variables)]
        pairs = []
        for i in range(n):
            pairs += [(g, v) for g, v in zip(grads[i], self.replica_variables[i])
                      if g is not None]
        self.local_steps = _step_counter(graph, self.devices[0], name)
        self.train_op = array_ops.group(optimizer.apply_gradients(pairs, name=name),
                                        variables.assign_add(self.local_steps, np.int64(1)))
        # The elastic step: differences and their sum read before any update.
        diffs = [[math_ops.subtract(x, c) for x, c in
                  zip(self.replica_variables[i], self.center_variables[i])] for i in range(n)]
        sums = [collective.all_reduce([diffs[i][k] for i in range(n)], op="sum",
                                      devices=self.devices)
                for k in range(len(self.replica_variables[0]))]
        before = [d for row in diffs for d in row] + [s for row in sums for s in row]
        with graph.control_dependencies(before):
            step = optimizer.apply_gradients(pairs, name=name + "_elastic")
        updates = []
        for i, device in enumerate(self.devices):
            with graph.device(device):
                for k, (x, c) in enumerate(zip(self.replica_variables[i],
                                               self.center_variables[i])):
                    with graph.control_dependencies([step]):
                        updates.append(variables.assign_sub(
                            x, math_ops.multiply(diffs[i][k], self.alpha)))
                    updates.append(variables.assign_add(
                        c, math_ops.multiply(sums[k][i], self.alpha)))
        updates.append(variables.assign_add(self.local_steps, np.int64(1)))
        self.elastic_op = array_ops.group(step, *updates, name=name + "_elastic_step")
        self.loss = _mean(graph, losses, name)
        return self.train_op, self.elastic_op, self.loss

    def run_step(self, sess, feed_dict):
        """One step of every replica: the elastic one every `period`-th call, else local."""
        # The schedule follows the checkpointed step count (a read only when it matters).
        elastic = self.period == 1 or (sess.run(self.local_steps) + 1) % self.period == 0
        loss, _ = sess.run([self.loss, self.elastic_op if elastic else self.train_op], feed_dict)
        return loss


class AsyncElasticAveragingStrategy:
    """Elastic averaging SGD, asynchronous form (Zhang, Choromanska, LeCun 2015, Algorithm 1;
    TRAINING.md section 2): one center x~ on `center_device` (default: the first worker's);
    each worker takes local steps x_i <- x_i - eta * g_i(x_i) on its own, and after every
    `period`-th of its local steps exchanges with the center as it is then:
        e = alpha * (x_i - x~);   x_i <- x_i - e;   x~ <- x~ + e
    Workers are independent: `run_step(sess, i, feed)` runs worker i's step (and its exchange
    when due), so the order of the calls (or of the client's threads) is the order the center
    sees the workers. The exchange follows the worker's local step, as in TensorFlow's
    ElasticAverageOptimizer, whose golden values it reproduces; alpha is the paper's moving
    rate, not TensorFlow's beta/tau/N. Plain SGD only. Each worker's local step count is a
    checkpointed variable (`<name>_<i>_local_steps`)."""

    def __init__(self, devices, moving_rate, period=1, center_device=None):
        self.devices = _check_devices(devices, "AsyncElasticAveragingStrategy")
        self.alpha = float(moving_rate)
        self.period = int(period)
        if self.period < 1:
            raise ValueError("period must be >= 1, got {}".format(period))
        self.center_device = str(center_device or self.devices[0])

    def minimize(self, optimizer, model_fn, inputs, name="async_easgd"):
        """Returns (per-worker local step ops, per-worker exchange ops, per-worker losses)."""
        from sluice import train  # train imports this module lazily.

        if type(optimizer) is not train.GradientDescentOptimizer:
            raise TypeError("AsyncElasticAveragingStrategy applies the paper's equations with "
                            "plain SGD: pass a GradientDescentOptimizer")
        graph = framework.get_default_graph()
        self.losses, self.replica_variables = _replicate(self.devices, model_fn, inputs, name)
        with graph.device(self.center_device):
            self.center_variables = [
                variables.Variable(v.initial_value, trainable=False,
                                   name="{}_center/{}".format(name, v.op.name.split("/", 1)[1]))
                for v in self.replica_variables[0]]
        self.local_ops, self.exchange_ops, self.local_steps, self._counts = [], [], [], []
        for i, device in enumerate(self.devices):
            vars_ = self.replica_variables[i]
            pairs = [(g, v) for g, v in zip(_gradients(self.losses[i], vars_), vars_)
                     if g is not None]
            counter = _step_counter(graph, device, "{}_{}".format(name, i))
            self.local_steps.append(counter)
            self._counts.append(variables.assign_add(counter, np.int64(1)))
            self.local_ops.append(array_ops.group(
                optimizer.apply_gradients(pairs, name="{}_{}".format(name, i)),
                self._counts[-1]))
            exchange = []
            for x, c in zip(vars_, self.center_variables):
                with graph.device(device):
                    e = math_ops.multiply(math_ops.subtract(x, c), self.alpha)
                    exchange.append(variables.assign_sub(x, e))
                with graph.device(self.center_device):
                    exchange.append(variables.assign_add(c, e))
            self.exchange_ops.append(array_ops.group(*exchange,
                                                     name="{}_{}_exchange".format(name, i)))
        return self.local_ops, self.exchange_ops, self.losses

    def run_step(self, sess, worker, feed_dict):
        """Worker `worker`'s local step (returns its loss before it), then its exchange with
        the center when this is a multiple of `period` of its steps (a second run, so the
        exchange reads the values the local step left)."""
        loss, _, steps = sess.run(
            [self.losses[worker], self.local_ops[worker], self._counts[worker]], feed_dict)
        if steps % self.period == 0:
            sess.run(self.exchange_ops[worker])
        return loss


class ADMMStrategy:
    """Consensus ADMM, scaled form (Boyd et al. 2011, section 7.1; TRAINING.md section 2):
    minimise sum_i f_i(x) with a local copy x_i per replica, the consensus z and scaled duals
    u_i (rho the penalty):
        x_i <- argmin_x f_i(x) + (rho/2) * ||x - z + u_i||^2   (here: `inner_steps` gradient
                                                                steps of the optimizer)
        z   <- (1/N) * sum_i (x_i + u_i)                       (a ring all-reduce)
        u_i <- u_i + x_i - z
    f_i is model_fn's loss on replica i's shard. Each replica keeps copies of z and u_i
    (`<name>_z_<i>/...`, `<name>_u_<i>/...`; z starts at the initial value, u at 0).
    `minimize` returns (local_op, consensus_op, mean local loss); `run_round(sess, feed)` runs
    `inner_steps` local steps, then the consensus update, and returns the primal residual
    ||r||^2 = sum_i ||x_i - z||^2 measured after it."""

    def __init__(self, devices, rho, inner_steps):
        self.devices = _check_devices(devices, "ADMMStrategy")
        self.rho = float(rho)
        self.inner_steps = int(inner_steps)
        if self.rho <= 0 or self.inner_steps < 1:
            raise ValueError("ADMM needs rho > 0 and inner_steps >= 1, got {} and {}".format(
                rho, inner_steps))

    def minimize(self, optimizer, model_fn, inputs, name="admm"):
        graph = framework.get_default_graph()
        losses, self.replica_variables = _replicate(self.devices, model_fn, inputs, name)
        n = len(self.devices)
        self.z_variables, self.u_variables = [], []
        objectives = []
        for i, device in enumerate(self.devices):
            with graph.device(device):
                zs, us, penalty = [], [], []
                for x in self.replica_variables[i]:
                    base = x.op.name.split("/", 1)[1]
                    z = variables.Variable(x.initial_value, trainable=False,
                                           name="{}_z_{}/{}".format(name, i, base))
                    u = variables.Variable(array_ops.zeros_like(x.initial_value),
                                           trainable=False, name="{}_u_{}/{}".format(name, i, base))
                    zs.append(z)
                    us.append(u)
                    d = x - z + u
                    penalty.append(math_ops.reduce_sum(d * d))
                objectives.append(losses[i] + (self.rho / 2.0) * math_ops.add_n(penalty))
            self.z_variables.append(zs)
            self.u_variables.append(us)
        pairs = []
        for obj, vars_ in zip(objectives, self.replica_variables):
            pairs += [(g, v) for g, v in zip(_gradients(obj, vars_), vars_) if g is not None]
        self.local_op = optimizer.apply_gradients(pairs, name=name)
        updates, residual_terms = [], []
        for k in range(len(self.replica_variables[0])):
            xs = [self.replica_variables[i][k] for i in range(n)]
            sums = [xs[i] + self.u_variables[i][k] for i in range(n)]
            z_new = collective.all_reduce(sums, op="mean", devices=self.devices)
            for i, device in enumerate(self.devices):
                with graph.device(device):
                    updates.append(variables.assign(self.z_variables[i][k], z_new[i]))
                    updates.append(variables.assign_add(self.u_variables[i][k],
                                                        xs[i] - z_new[i]))
                    r = xs[i] - z_new[i]
                    residual_terms.append(math_ops.reduce_sum(r * r))
        self.consensus_op = array_ops.group(*updates, name=name + "_consensus")
        # Measured on the values the consensus step used (x_i is not changed by it).
        self.primal_residual = math_ops.add_n(residual_terms)
        self.loss = _mean(graph, losses, name)
        return self.local_op, self.consensus_op, self.loss

    def run_round(self, sess, feed_dict):
        for _ in range(self.inner_steps):
            sess.run(self.local_op, feed_dict)
        residual, _ = sess.run([self.primal_residual, self.consensus_op], feed_dict)
        return residual
