"""Parameter-server pulls and pushes (`sl.ps`), for asynchronous training: a variable on a ps
task that workers pull and push without waiting for each other, updated by one of the rules of
TRAINING.md section 3 (ops/ps_ops.h has the equations):

    "asgd"       w <- w - eta * g under the variable's lock
    "hogwild"    the same, element by element, without the lock (Niu et al. 2011)
    "dc_asgd"    w <- w - eta * (g + lambda * g * g * (w - w_bak(m))), one backup per worker
    "dc_asgd_a"  the same with lambda / sqrt(MS + epsilon), MS = mu * MS + (1 - mu) * g * g
    "adadelay"   w <- w - eta / (beta + sqrt(t + tau)) * g
    "sync"       synchronous aggregation: `replicas` gradients of the current version are
                 averaged and applied once; stale ones are dropped and counted

The ps counts pushes (its clock t) and remembers each worker's clock at its last pull; a push's
delay is tau = t - that clock. A pull may bound staleness (SSP): `pull(w, m, staleness=s,
workers=N)` waits until the slowest worker is at most s pushes behind worker m. `declare` sets
a rule per variable by name pattern; `pull_rows`/`push_rows` move only an embedding's touched
rows; `DelayScheduler` orders pulls and pushes reproducibly. Each worker's graph pulls,
computes its gradient on the pulled value and pushes it:

    with sl.device("/job:ps/task:0"):
        w = sl.Variable(np.zeros([784, 10], np.float32), name="w")
    with sl.device("/job:worker/task:%d" % m):
        w_m = sl.ps.pull(w, worker=m, rule="dc_asgd")
        loss = ...(w_m)
        grad, = sl.gradients(loss, [w_m])
    tau = sl.ps.push(w, grad, worker=m, rule="dc_asgd", learning_rate=0.1, lam=0.04)
    histogram = sl.ps.delays(w)      # pushes with delay 0, 1, 2, ...

The ops are placed on the variable's device whatever the enclosing block requests.
Hyper-parameters are float attributes (single precision, as TensorFlow's).
"""

import contextlib
import fnmatch

import numpy as np

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import math_ops
from sluice import variables

RULES = ("asgd", "hogwild", "dc_asgd", "dc_asgd_a", "adadelay", "sync")


def _handle(var, what):
    ref = framework._as_tensor_or_none(var)
    if ref is None or ref.op.type != "Variable":
        raise TypeError("{} needs a Variable, got {!r}".format(what, var))
    location = framework._caller_location()
    _state_variables(ref.graph).setdefault(_name(ref), ref)
    return ref, ref.graph._write_handle(ref, location), location


def _name(ref):
    return ref.op.get_attr("shared_name") or ref.op.name


def _state_variables(graph):
    """{variable name: Variable tensor} of the variables sl.ps ops of `graph` use: those with
    parameter-server state."""
    return graph.__dict__.setdefault("_ps_state_variables", {})


# Checkpoints: sl.train.Saver saves each such variable's state beside its value (clocks, each
# worker's pull clock and DC-ASGD backup, the delay histogram), as two entries
# "<name>:ps_clocks" and "<name>:ps_values" (':' is in no variable name), and restores it.
STATE_SUFFIXES = (":ps_clocks", ":ps_values")


def _state_ops(graph, name):
    """The (export op, import op, clocks placeholder, values placeholder) of variable `name`,
    built once per graph on its device."""
    cache = graph.__dict__.setdefault("_ps_state_ops", {})
    if name not in cache:
        ref = _state_variables(graph)[name]
        location = framework._caller_location()
        with graph.as_default(), graph.name_scope(None), graph.name_scope("_ps_state"), \
                _on_variable(ref):
            handle = graph._write_handle(ref, location)
            export = graph._add_op("PsExportState", [handle], {}, "export", location)
            clocks = array_ops.placeholder(dtypes.int64, [None], name="clocks")
            values = array_ops.placeholder(ref.dtype, [None], name="values")
            handle = graph._write_handle(ref, location)
            imported = graph._add_op("PsImportState", [handle, clocks, values], {}, "import",
                                     location)
        cache[name] = (export, imported, clocks, values)
    return cache[name]


def export_state(sess, names):
    """{name: (value, clocks, values)}: each variable's value with its ps state, read in one
    step (each variable's at one moment)."""
    graph = sess.graph
    ops = [_state_ops(graph, n)[0] for n in names]
    fetched = sess.run([list(op.outputs) for op in ops])
    return dict(zip(names, (tuple(f) for f in fetched)))


def import_state(sess, states):
    """Sets each variable's ps state from {name: (clocks, values)} in one step (after the
    values are restored)."""
    if not states:
        return
    graph = sess.graph
    fetches, feeds = [], {}
    for name, (clocks, values) in states.items():
        _, imported, clocks_ph, values_ph = _state_ops(graph, name)
        fetches.append(imported.outputs[0])
        feeds[clocks_ph] = clocks
        feeds[values_ph] = values
    sess.run(fetches, feeds)


def _on_variable(ref):
    """The ops run where the variable lives, whatever device the enclosing block requests."""
    return ref.graph.device(ref.op.device) if ref.op.device else contextlib.nullcontext()


def declare(pattern, rule, **hyper):
    """Declares the rule (and its hyper-parameters: learning_rate, lam, momentum, epsilon,
    beta, replicas) of the default graph's variables whose names match `pattern` (fnmatch:
    "embedding*", "dense/*"), so one model mixes rules and its pulls and pushes need not repeat
    them: `pull` and `push` called without `rule` use the first declaration that matches (else
    "asgd"); arguments given to them win over the declaration's."""
    _check_rule(rule)
    unknown = set(hyper) - {"learning_rate", "lam", "momentum", "epsilon", "beta", "replicas"}
    if unknown:
        raise TypeError("declare: unknown hyper-parameters {}".format(sorted(unknown)))
    graph = framework.get_default_graph()
    if not hasattr(graph, "_ps_rules"):
        graph._ps_rules = []
    graph._ps_rules.append((pattern, rule, dict(hyper)))


def declared_rule(var):
    """(rule, hyper-parameters) declared for `var` (see `declare`); ("asgd", {}) if none."""
    ref = framework._as_tensor_or_none(var)
    for pattern, rule, hyper in getattr(ref.graph, "_ps_rules", []):
        if fnmatch.fnmatchcase(ref.op.name, pattern):
            return rule, dict(hyper)
    return "asgd", {}


def _check_rule(rule):
    if rule not in RULES:
        raise ValueError("rule {!r} is not one of {}".format(rule, ", ".join(RULES)))


def pull(var, worker, rule=None, staleness=None, workers=None, return_lead=False,
         name=None):
    """The variable's value for worker `worker`; the ps records the pull's clock (and, for
    the DC-ASGD rules, the value as that worker's backup). With `staleness` s and `workers` N,
    bounded staleness (SSP): worker m, having pushed c_m times, reads only once the slowest of
    workers 0..N-1 has pushed c_m - s times; until then the pull waits (s = 0: lockstep). With
    `return_lead`, also returns how many pushes m is ahead of the slowest when served. Without
    `rule`, the variable's declared one (`declare`)."""
    if rule is None:
        rule = declared_rule(var)[0]
    _check_rule(rule)
    if staleness is not None and (int(staleness) < 0 or not workers or int(workers) < 1):
        raise ValueError("bounded staleness needs staleness >= 0 and the number of workers, got "
                         "staleness={!r}, workers={!r}".format(staleness, workers))
    ref, handle, location = _handle(var, "ps.pull")
    attrs = {"worker": int(worker), "rule": rule,
             "staleness": -1 if staleness is None else int(staleness),
             "workers": int(workers or 0)}
    with _on_variable(ref):
        op = ref.graph._add_op("PsPull", [handle], attrs, name, location)
    return (op.outputs[0], op.outputs[1]) if return_lead else op.outputs[0]


def pull_rows(var, indices, worker, rule=None, name=None):
    """Rows `indices` of the variable (an embedding) for worker `worker`: only those rows leave
    the ps. Records the pull's clock like `pull` (and, for the DC-ASGD rules, the rows as the
    worker's backup). Without `rule`, the variable's declared one."""
    if rule is None:
        rule = declared_rule(var)[0]
    _check_rule(rule)
    ref, handle, location = _handle(var, "ps.pull_rows")
    with _on_variable(ref):
        return ref.graph._add_op("PsPullRows", [handle, indices],
                                 {"worker": int(worker), "rule": rule}, name,
                                 location).outputs[0]


def push_rows(var, indices, values, worker, rule=None, learning_rate=None, lam=None,
              momentum=None, epsilon=None, beta=None, name=None):
    """Applies `values` (one row per index) to rows `indices` by the variable's rule: asgd
    (rows[indices[i]] -= learning_rate * values[i], repeated indices add up), hogwild (the
    same without the lock), adadelay, dc_asgd and dc_asgd_a (the backup is the row as this
    worker's last `pull_rows` read it); only the touched rows travel and are written. Returns
    the push's delay. Hyper-parameters as `push` ("sync" has no row form)."""
    rule, attrs = _push_attrs(var, rule, learning_rate, lam, momentum, epsilon, beta, None)
    if rule == "sync":
        raise ValueError("push_rows: rule 'sync' aggregates whole variables; it has no row "
                         "form")
    del attrs["replicas"]
    attrs["worker"], attrs["rule"] = int(worker), rule
    ref, handle, location = _handle(var, "ps.push_rows")
    with _on_variable(ref):
        return ref.graph._add_op("PsPushRows", [handle, indices, values], attrs, name,
                                 location).outputs[0]


def counters(var, name=None):
    """int64 [pushes received, versions applied ("sync"), pushes dropped as stale ("sync"),
    pulls waiting, bytes held by the per-worker backups ("dc_asgd", "dc_asgd_a": the memory
    cost of delay compensation, one copy of the variable per worker that pulled)]."""
    ref, handle, location = _handle(var, "ps.counters")
    with _on_variable(ref):
        return ref.graph._add_op("PsCounters", [handle], {}, name, location).outputs[0]


def waiting(var, name=None):
    """How many pulls of the variable wait for slower workers now (int64; element 3 of
    `counters`)."""
    return array_ops.gather(counters(var), 3, name=name)


def push(var, grad, worker, rule=None, learning_rate=None, lam=None, momentum=None,
         epsilon=None, beta=None, replicas=None, name=None):
    """Applies `grad` (the variable's dtype and shape) from worker `worker` by `rule`; returns
    the push's delay (int64). `lam` is DC-ASGD's lambda, `momentum` and `epsilon` DC-ASGD-a's
    mu and epsilon, `beta` AdaDelay's, `replicas` the gradients "sync" averages per update
    (fewer than the workers: the slowest are backups). One rule per variable. What is not
    given comes from the variable's declaration (`declare`), else the defaults: asgd,
    learning_rate 0.01, lam 0, momentum 0.95, epsilon 1e-7, beta 1, replicas 1."""
    rule, attrs = _push_attrs(var, rule, learning_rate, lam, momentum, epsilon, beta, replicas)
    attrs["worker"], attrs["rule"] = int(worker), rule
    ref, handle, location = _handle(var, "ps.push")
    with _on_variable(ref):
        return ref.graph._add_op("PsPush", [handle, grad], attrs, name, location).outputs[0]


def _push_attrs(var, rule, learning_rate, lam, momentum, epsilon, beta, replicas):
    """(rule, hyper-parameter attributes) of a push: what is not given comes from the
    variable's declaration (`declare`, when its rule is the push's), else the defaults."""
    declared_name, declared = declared_rule(var)
    if rule is None:
        rule = declared_name
    else:
        declared = {} if rule != declared_name else declared
    _check_rule(rule)
    given = {"learning_rate": learning_rate, "lam": lam, "momentum": momentum,
             "epsilon": epsilon, "beta": beta, "replicas": replicas}
    defaults = {"learning_rate": 0.01, "lam": 0.0, "momentum": 0.95, "epsilon": 1e-7,
                "beta": 1.0, "replicas": 1}
    h = {k: given[k] if given[k] is not None else declared.get(k, defaults[k]) for k in given}
    return rule, {"learning_rate": float(h["learning_rate"]), "lambda": float(h["lam"]),
                  "momentum": float(h["momentum"]), "epsilon": float(h["epsilon"]),
                  "beta": float(h["beta"]), "replicas": int(h["replicas"])}


def delays(var, name=None):
    """int64 counts of the variable's pushes by delay: element tau is how many had delay tau."""
    ref, handle, location = _handle(var, "ps.delays")
    with _on_variable(ref):
        return ref.graph._add_op("PsDelays", [handle], {}, name, location).outputs[0]


class DelayScheduler:
    """A seeded order of pulls and pushes of `num_workers` workers, for reproducible
    asynchronous runs (tests, research): each worker alternates pull and push; at every event a
    worker is drawn at random (numpy's generator seeded with `seed`), except that a worker whose
    push would otherwise come more than `max_delay` pushes after its pull goes first. Run the
    events in order, one at a time, and the asynchronous run is the same bit for bit every time.

        events = sl.ps.DelayScheduler(3, seed=7, max_delay=2).events(pushes=30)
        for kind, m in events:       # ("pull", 1), ("pull", 0), ("push", 1), ...
            ...
    """

    def __init__(self, num_workers, seed, max_delay):
        if int(num_workers) < 1 or int(max_delay) < 0:
            raise ValueError("DelayScheduler needs num_workers >= 1 and max_delay >= 0, got "
                             "{} and {}".format(num_workers, max_delay))
        self.num_workers, self.seed, self.max_delay = int(num_workers), seed, int(max_delay)

    def events(self, pushes):
        """The schedule of `pushes` pushes (and the pulls before them); every push's delay
        (pushes by others between its worker's pull and it) is at most max_delay."""
        rng = np.random.default_rng(self.seed)
        pulled_at = {}  # Worker -> pushes done when it pulled.
        done, out = 0, []
        while done < pushes:
            overdue = [m for m, t in pulled_at.items() if done - t >= self.max_delay]
            m = min(overdue) if overdue else int(rng.integers(self.num_workers))
            if m in pulled_at:
                out.append(("push", m))
                del pulled_at[m]
                done += 1
            else:
                out.append(("pull", m))
                pulled_at[m] = done
        return out


class LocalSteps:
    """Communication frequency K for asynchronous training: worker `worker` trains a local copy
    of `var` (on `device`) for K steps and pushes their accumulated update to the ps once,
    instead of pushing every step:

        refresh:  x <- pull(var);  acc <- 0
        step:     x <- x - eta * g(x);  acc <- acc + g(x)       (K times)
        push:     var <- var - eta * acc  (ASGD: the local steps' whole update, x_pulled - x)

        local = sl.ps.LocalSteps(w, worker=m, device="/job:worker/task:%d" % m,
                                 learning_rate=0.1)
        loss = model(local.value)
        grad, = sl.gradients(loss, [local.value])
        step = local.step(grad)
        sess.run(local.refresh)
        for _ in range(k): sess.run(step)
        sess.run(local.push)
    """

    def __init__(self, var, worker, device, learning_rate=0.01, name=None):
        ref = framework._as_tensor_or_none(var)
        shape = ref.get_shape().as_list()
        dtype = ref.dtype.as_numpy_dtype
        base = name or "{}_local_{}".format(ref.op.name, int(worker))
        self._var, self._worker, self._lr = ref, int(worker), float(learning_rate)
        with ref.graph.device(device):
            self.value = variables.Variable(np.zeros(shape, dtype), trainable=False,
                                            name=base)
            self._acc = variables.Variable(np.zeros(shape, dtype), trainable=False,
                                           name=base + "_accumulated")
            pulled = pull(ref, worker=self._worker, rule="asgd")
            self.refresh = array_ops.group(variables.assign(self.value, pulled),
                                           variables.assign(self._acc, np.zeros(shape, dtype)))
        self._device = device
        self.push = push(ref, self._acc, self._worker, rule="asgd",
                         learning_rate=self._lr)

    def step(self, grad):
        """One local step on the copy by `grad` (the loss's gradient at `value`)."""
        with self._var.graph.device(self._device):
            return array_ops.group(
                variables.assign_sub(self.value, math_ops.multiply(grad, self._lr)),
                variables.assign_add(self._acc, grad))
