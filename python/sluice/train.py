"""Optimizers (`sl.train.*Optimizer`) that build a training step from a loss.

    train_op = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
    init = sl.global_variables_initializer()      # after minimize: initialises slots too
    with sl.Session() as sess:
        sess.run(init)
        for _ in range(100):
            sess.run(train_op, feed_dict={...})

The updates are the engine's fused ops (ops/optimizers.h, ops/training_ops.h). Slot variables
(momentum accumulators, Adam moments) are named "<variable>/<optimizer name>[...]" and are
found by global_variables(); they are not trainable.

`Saver` saves and restores variable values to a checkpoint file (runtime/session/checkpoint.h).
"""

import os
import tempfile

import numpy as np

from sluice import errors
from sluice import framework
from sluice import ps
from sluice import variable_sharing
from sluice import variables
from sluice.distributed import ClusterSpec, Server  # TF1's tf.train names.
from sluice._core import core as _core


class Optimizer:
    """Base class: compute_gradients, apply_gradients and minimize.

    One optimizer object builds into one graph (its slots and state live there).
    """

    def __init__(self, core_optimizer):
        self._core = core_optimizer
        self._graph = None

    @property
    def name(self):
        """The optimizer's name: the scope of its update nodes and slot names."""
        return self._core.name

    def _graph_for(self, loss):
        g = framework.convert_to_tensor(loss).graph
        if self._graph is None:
            self._graph = g
        elif self._graph is not g:
            raise ValueError("optimizer {!r} already builds into another graph".format(self.name))
        return g

    @staticmethod
    def _var_list(graph, var_list):
        if var_list is None:
            var_list = variables._collection(graph, variables.TRAINABLE_VARIABLES)
        if not var_list:
            raise ValueError("no variables to optimize")
        return list(var_list)

    def compute_gradients(self, loss, var_list=None):
        """[(gradient, variable)] for `var_list` (default: trainable_variables()); the gradient
        is None for a variable the loss does not depend on."""
        g = self._graph_for(loss)
        var_list = self._var_list(g, var_list)
        grads = self._core._compute_gradients(g, loss, var_list)
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """An Operation applying each (gradient, variable) update (pairs with a None gradient
        are skipped); with `global_step` it also adds 1 to that Variable afterwards."""
        grads_and_vars = list(grads_and_vars)
        if not grads_and_vars:
            raise ValueError("apply_gradients needs at least one (gradient, variable) pair")
        g = self._graph_for(grads_and_vars[0][1])
        op = self._core._apply_gradients(g, grads_and_vars, name or self.name)
        return op if global_step is None else _count_step(g, op, global_step)

    def minimize(self, loss, global_step=None, var_list=None, name=None, pipeline=None):
        """An Operation that runs one training step: computes the gradients of `loss` and
        updates every variable of `var_list` (default: trainable_variables()); with
        `global_step` (an integer Variable) it also adds 1 to it once the updates are done.
        With `pipeline` (an sl.pipeline.Pipeline) the step runs the batch as micro-batches
        through the stages built in sl.pipeline.stage blocks, in the pipeline's schedule, and
        applies the mean of their gradients once.

        Raises:
          sluice.errors.InvalidArgumentError: e.g. the loss depends on none of the variables.
        """
        if isinstance(global_step, (list, tuple)) and var_list is None:
            # A var_list passed positionally, as before global_step existed.
            global_step, var_list = None, global_step
        g = self._graph_for(loss)
        if pipeline is not None:
            grads_and_vars = pipeline._build_training(g, loss, self._var_list(g, var_list))
            return self.apply_gradients(grads_and_vars, global_step, name)
        op = self._core._minimize(g, loss, self._var_list(g, var_list), name or self.name)
        return op if global_step is None else _count_step(g, op, global_step)

    def variables(self):
        """The Variables this optimizer created (slots, Adam's beta powers)."""
        if self._graph is None:
            return []
        return [variables.Variable._from_tensor(t)
                for t in self._core._created_variables(self._graph)]


def _count_step(graph, train_op, global_step):
    """An Operation that runs `train_op`, then adds 1 to `global_step`."""
    step = framework._as_tensor_or_none(global_step)
    if step is None or step.op.type != "Variable" or not step.dtype.is_integer:
        raise TypeError("global_step must be an integer Variable, got {!r}".format(global_step))
    with graph.as_default(), graph.device(step.op.device), \
            graph.control_dependencies([train_op]):
        return variables.assign_add(global_step, np.ones((), step.dtype.as_numpy_dtype)).op


_PS_OPS = ("Variable", "VariableV2", "VarHandleOp")


def byte_size_load_fn(op):
    """The load an operation puts on a ps task: its variable's bytes (0 when unknown)."""
    return max(0, getattr(op, "bytes", -1))


class GreedyLoadBalancingStrategy:
    """A ps_strategy for replica_device_setter: each variable goes to the ps task with the
    least load so far (`load_fn(op)`, bytes by default), the lowest index on ties."""

    def __init__(self, num_tasks, load_fn=byte_size_load_fn):
        self._loads = [0] * int(num_tasks)
        self._load_fn = load_fn

    def __call__(self, op):
        task = min(range(len(self._loads)), key=lambda t: (self._loads[t], t))
        self._loads[task] += self._load_fn(op)
        return task


class _ReplicaDeviceSetter:
    """The device function replica_device_setter returns; `placement()` and `describe()`
    report where each variable went."""

    def __init__(self, ps_tasks, ps_device, worker_device, merge_devices, ps_ops, strategy):
        self._ps_tasks, self._ps_device = ps_tasks, ps_device
        self._worker_device, self._merge = worker_device, merge_devices
        self._ps_ops, self._strategy = ps_ops, strategy
        self._placed = []  # (variable name, device, bytes)

    def __call__(self, op):
        if op.type in self._ps_ops:
            device = "{}/task:{}".format(self._ps_device, int(self._strategy(op)))
            self._placed.append((op.name, device, max(0, getattr(op, "bytes", -1))))
        else:
            device = self._worker_device
        if self._merge and op.device:
            # Components the chosen device leaves unset come from the enclosing request.
            mine = {part.split(":")[0] for part in device.split("/") if part}
            extra = [p for p in op.device.split("/") if p and p.split(":")[0] not in mine]
            device = device + "".join("/" + p for p in extra)
        return device

    def placement(self):
        """[(variable name, device, bytes)] in creation order."""
        return list(self._placed)

    def describe(self):
        """One line per ps task: its bytes and variables."""
        lines = []
        for t in range(self._ps_tasks):
            device = "{}/task:{}".format(self._ps_device, t)
            mine = [(n, b) for n, d, b in self._placed if d.startswith(device)]
            lines.append("{}: {} bytes in {} variable(s){}{}".format(
                device, sum(b for _, b in mine), len(mine), ": " if mine else "",
                ", ".join("{} ({})".format(n, b) for n, b in mine)))
        return "\n".join(lines)


def replica_device_setter(ps_tasks=0, ps_device="/job:ps", worker_device="/job:worker",
                          merge_devices=True, cluster=None, ps_ops=None, ps_strategy=None):
    """TF1's device function for between-graph replication: variables go to the ps tasks,
    everything else to `worker_device`; use it as `with sl.device(sl.train.replica_device_setter(
    ...)):`. Which ps task: `ps_strategy(op)` returning a task index, by default a
    GreedyLoadBalancingStrategy by bytes (each variable to the task holding the fewest bytes so
    far; TF1's default is round robin, which piles big variables up when their sizes alternate).
    With `cluster` (a ClusterSpec or dict) the number of ps tasks is its "ps" job's. Returns None
    when there are no ps tasks, as TF1 does. The returned function's `describe()` prints the
    placement. Optimizer updates and slots follow their variable whatever this says (see
    Optimizer). An enclosing device request's components that this leaves unset are kept
    (merge_devices)."""
    if cluster is not None:
        spec = ClusterSpec(cluster)
        ps_tasks = spec.num_tasks("ps") if "ps" in spec.jobs else 0
    if not ps_tasks:
        return None
    ps_ops = tuple(ps_ops) if ps_ops is not None else _PS_OPS
    strategy = ps_strategy or GreedyLoadBalancingStrategy(ps_tasks)
    return _ReplicaDeviceSetter(ps_tasks, ps_device, worker_device, merge_devices, ps_ops,
                                strategy)


GLOBAL_STEP = "global_step"


def get_global_step(graph=None):
    """The graph's global step Variable (get_or_create_global_step), or None."""
    graph = graph or framework.get_default_graph()
    steps = graph.get_collection(GLOBAL_STEP)
    return steps[0] if steps else None


def create_global_step(graph=None):
    """Creates the graph's global step: an int64 scalar Variable "global_step" starting at 0,
    not trainable. ValueError if it exists."""
    graph = graph or framework.get_default_graph()
    if get_global_step(graph) is not None:
        raise ValueError("the graph already has a global step")
    from sluice import variable_sharing as vs  # It imports this module's siblings.

    with graph.as_default(), vs.variable_scope(vs.VariableScope(""), auxiliary_name_scope=False), \
            graph.name_scope(""):
        step = vs.get_variable(GLOBAL_STEP, shape=[], dtype="int64",
                               initializer=vs.zeros_initializer(), trainable=False)
    graph.add_to_collection(GLOBAL_STEP, step)
    return step


def get_or_create_global_step(graph=None):
    """The graph's global step, created on first use (see create_global_step)."""
    step = get_global_step(graph)
    return step if step is not None else create_global_step(graph)


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""

    def __init__(self, learning_rate, name="GradientDescent"):
        super().__init__(_core._GradientDescentOptimizer(float(learning_rate), name))


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= learning_rate * accum (with use_nesterov:
    var -= learning_rate * (grad + momentum * accum))."""

    def __init__(self, learning_rate, momentum, use_nesterov=False, name="Momentum"):
        super().__init__(_core._MomentumOptimizer(
            float(learning_rate), float(momentum), bool(use_nesterov), name))


class AdagradOptimizer(Optimizer):
    """accum += grad^2; var -= learning_rate * grad / sqrt(accum)."""

    def __init__(self, learning_rate, initial_accumulator_value=0.1, name="Adagrad"):
        super().__init__(_core._AdagradOptimizer(
            float(learning_rate), float(initial_accumulator_value), name))


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba): m += (1 - beta1)(grad - m); v += (1 - beta2)(grad^2 - v);
    var -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, name="Adam"):
        super().__init__(_core._AdamOptimizer(
            float(learning_rate), float(beta1), float(beta2), float(epsilon), name))


class Saver:
    """Saves and restores variables to and from checkpoint files.

    Values are stored by variable name (the Variable node's name), so a session of another
    graph built the same way can restore them. A save is atomic (a crash leaves the old file or
    the new one); a restore checks the whole file and every variable first and changes nothing
    on error (DataLossError for a damaged file, NotFoundError for a missing variable,
    InvalidArgumentError for a dtype or shape mismatch).

    Args:
      var_list: the Variables (and PartitionedVariables) to save and restore (default: every
        variable of the session's graph, optimizer slots included; restoring then needs exactly
        the checkpoint's set). A PartitionedVariable is saved as one tensor under its name, so
        it restores onto any number of parts (or onto an unpartitioned variable of that name,
        and back).

        saver = sl.train.Saver()
        saver.save(sess, "/tmp/model.ckpt")
        saver.restore(other_sess, "/tmp/model.ckpt")     # instead of running the initializer
    """

    def __init__(self, var_list=None, max_to_keep=5):
        self._partitioned = None  # None: the graph's, found at each save and restore.
        if var_list is None:
            self._names = []
        elif isinstance(var_list, (list, tuple)) and var_list:
            self._names, self._partitioned = [], []
            for v in var_list:
                if isinstance(v, variables.PartitionedVariable):
                    self._partitioned.append(v)
                    self._names.extend(_variable_name(part) for part in v)
                else:
                    self._names.append(_variable_name(v))
        else:
            raise TypeError("Saver(var_list=) takes a non-empty list of Variables")
        self._max_to_keep = max_to_keep
        self._kept = []  # Paths this Saver wrote, oldest first.

    def _partitioned_variables(self, sess):
        if self._partitioned is not None:
            return self._partitioned
        return variable_sharing.partitioned_variables(sess.graph)

    def save(self, sess, save_path, global_step=None, latest_filename="checkpoint",
             write_state=True):
        """Writes the variables' current values to `save_path` ("-<global_step>" appended when
        given: a number, or a Variable/Tensor whose value is read); returns the path written.

        Also records the path in the state file `latest_filename` of its directory (read by
        latest_checkpoint) and deletes this Saver's checkpoints beyond the newest
        `max_to_keep` (None or 0: keep all)."""
        if global_step is not None:
            if framework._as_tensor_or_none(global_step) is not None:
                global_step = sess.run(global_step)
            save_path = "{}-{}".format(save_path, int(global_step))
        save_path = str(save_path)
        sess._session.save(save_path, self._names)
        partitioned = self._partitioned_variables(sess)
        stateful = self._ps_variables(sess)
        if partitioned or stateful:
            _rewrite(save_path, partitioned, ps.export_state(sess, stateful))
        if save_path in self._kept:
            self._kept.remove(save_path)
        self._kept.append(save_path)
        if self._max_to_keep:
            while len(self._kept) > self._max_to_keep:
                old = self._kept.pop(0)
                if os.path.exists(old):
                    os.remove(old)
        if write_state:
            _write_checkpoint_state(os.path.dirname(os.path.abspath(save_path)), save_path,
                                    self._kept, latest_filename)
        return save_path

    def restore(self, sess, save_path):
        """Sets the variables from the checkpoint `save_path` (they need no initializer run)."""
        if save_path is None:
            raise ValueError("Saver.restore: save_path is None (did latest_checkpoint find no "
                             "checkpoint?)")
        save_path = str(save_path)
        partitioned = self._partitioned_variables(sess)
        stateful = self._ps_variables(sess)
        if not partitioned and not stateful:
            sess._session.restore(save_path, self._names)
            return
        entries = dict(_core._read_checkpoint(save_path))
        states = {}
        for name in list(entries):
            if name.endswith(ps.STATE_SUFFIXES):  # Kept aside; a variable not here drops its.
                variable, _, kind = name.rpartition(":")
                states.setdefault(variable, {})[kind] = entries.pop(name)
        states = {n: (st["ps_clocks"], st["ps_values"]) for n, st in states.items()
                  if n in stateful and len(st) == 2}
        _split_wholes(entries, save_path, partitioned)
        # A file of this graph's variables, beside the checkpoint, restored with every check of
        # a restore; then the ps state, which must follow its values.
        directory = os.path.dirname(os.path.abspath(save_path))
        fd, parts_path = tempfile.mkstemp(prefix=".restore-", dir=directory)
        os.close(fd)
        try:
            _core._write_checkpoint(parts_path, sorted(entries.items()))
            sess._session.restore(parts_path, self._names)
        finally:
            os.remove(parts_path)
        ps.import_state(sess, states)

    def _ps_variables(self, sess):
        """The names of the variables to save with their parameter-server state."""
        names = list(ps._state_variables(sess.graph))
        return [n for n in names if n in self._names] if self._names else names


class CheckpointState:
    """What a checkpoint state file says: the newest checkpoint and every one kept."""

    def __init__(self, model_checkpoint_path, all_model_checkpoint_paths):
        self.model_checkpoint_path = model_checkpoint_path
        self.all_model_checkpoint_paths = list(all_model_checkpoint_paths)

    def __repr__(self):
        return "<CheckpointState {!r}>".format(self.model_checkpoint_path)


def _quote(path):
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_checkpoint_state(directory, latest, kept, filename):
    """TF1's text state file: relative paths for checkpoints in `directory`. Written to a
    temporary file and renamed, so a reader sees the old state or the new one."""
    def rel(p):
        p = os.path.abspath(p)
        return os.path.basename(p) if os.path.dirname(p) == directory else p

    lines = ["model_checkpoint_path: " + _quote(rel(latest))]
    lines += ["all_model_checkpoint_paths: " + _quote(rel(p)) for p in kept]
    path = os.path.join(directory, filename)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def _unquote(text, path, number):
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("{}:{}: expected a quoted path, got {!r}".format(path, number, text))
    out, i = [], 1
    while i < len(text) - 1:
        if text[i] == "\\" and i + 1 < len(text) - 1:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def get_checkpoint_state(checkpoint_dir, latest_filename="checkpoint"):
    """The CheckpointState of `checkpoint_dir` (paths made absolute), or None when it has no
    state file. A malformed file is a ValueError naming its line."""
    path = os.path.join(checkpoint_dir, latest_filename)
    if not os.path.exists(path):
        return None
    latest, kept = None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError("{}:{}: expected 'key: \"path\"', got {!r}".format(
                    path, number, line.rstrip()))
            value = os.path.join(checkpoint_dir, _unquote(value, path, number))
            if key.strip() == "model_checkpoint_path":
                latest = value
            elif key.strip() == "all_model_checkpoint_paths":
                kept.append(value)
    if latest is None:
        raise ValueError("{}: no model_checkpoint_path line".format(path))
    return CheckpointState(latest, kept)


def latest_checkpoint(checkpoint_dir, latest_filename="checkpoint"):
    """The newest checkpoint a Saver recorded in `checkpoint_dir`, or None if there is none (or
    its file is gone)."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not os.path.exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path


def _rewrite(path, partitioned, states):
    """Rewrites the checkpoint `path` with each partitioned variable's parts joined into one
    entry under the variable's name, and each ps variable's value replaced by the one read with
    its state (`states`: {name: (value, clocks, values)}), the state beside it."""
    entries = dict(_core._read_checkpoint(path))
    for name, (value, clocks, values) in states.items():
        entries[name] = value
        entries[name + ps.STATE_SUFFIXES[0]] = clocks
        entries[name + ps.STATE_SUFFIXES[1]] = values
    for var in partitioned:
        parts = [entries.pop(_variable_name(part)) for part in var]
        entries[var.name] = np.concatenate(parts, axis=var.axis)
    _core._write_checkpoint(path, sorted(entries.items()))


def _split_wholes(entries, path, partitioned):
    """Cuts each partitioned variable's whole entry in `entries` (read from `path`) into this
    graph's parts (entries that hold the parts already keep them)."""
    for var in partitioned:
        names = [_variable_name(part) for part in var]
        if var.name not in entries:
            if all(n in entries for n in names):
                continue
            raise errors.NotFoundError(
                "partitioned variable '{}' is not in checkpoint {}".format(var.name, path),
                errors.NOT_FOUND)
        whole = entries.pop(var.name)
        if list(whole.shape) != var.shape.as_list() or whole.dtype != var.dtype.as_numpy_dtype:
            raise errors.InvalidArgumentError(
                "partitioned variable '{}' is {} {} in the graph but {} {} in checkpoint "
                "{}".format(var.name, var.dtype.name, var.shape.as_list(), whole.dtype.name,
                            list(whole.shape), path), errors.INVALID_ARGUMENT)
        cuts = np.cumsum([part.shape[var.axis] for part in var])[:-1]
        for name, piece in zip(names, np.split(whole, cuts, axis=var.axis)):
            entries[name] = np.ascontiguousarray(piece)


def _variable_name(var):
    """The name a variable has in the session (its "shared_name", else its node name)."""
    tensor = framework._as_tensor_or_none(var)
    if tensor is None or tensor.op.type != "Variable":
        raise TypeError("Saver var_list entries are Variables, got {!r}".format(var))
    shared = tensor.op.get_attr("shared_name")
    return shared or tensor.op.name


def __getattr__(name):
    # The strategies import this module's optimizers' callers; loaded on first use.
    if name in ("BSPStrategy", "ModelAveragingStrategy", "ElasticAveragingStrategy",
                "AsyncElasticAveragingStrategy", "ADMMStrategy"):
        from sluice import strategies
        return getattr(strategies, name)
    raise AttributeError("module 'sluice.train' has no attribute {!r}".format(name))
