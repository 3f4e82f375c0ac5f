"""Pipelines: stages, micro-batches, schedules and their verifier (`sl.pipeline`; C++:
distributed/pipeline_schedule.h and distributed/pipeline_builder.h).

A pipeline cuts a model into stages on different workers and a batch into micro-batches that
flow through them. Build the model once, each stage in its own block, then hand a Pipeline to
the optimizer; one run of the returned op trains on the whole batch, micro-batch by
micro-batch, in the schedule's order on each worker:

    with sl.pipeline.stage(0, device="/job:worker/task:0"):
        h = sl.nn.relu(sl.matmul(x, sl.get_variable("w0", [784, 256])))
    with sl.pipeline.stage(1, device="/job:worker/task:1"):
        logits = sl.matmul(h, sl.get_variable("w1", [256, 10]))
        loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
    pipe = sl.pipeline.Pipeline(micro_batches=8, schedule="1f1b")
    train_op = sl.train.GradientDescentOptimizer(0.1).minimize(loss, pipeline=pipe)
    out = sess.run({"train": train_op, "loss": pipe.loss, "timing": pipe.timing}, feed_dict=...)
    print(pipe.measure(out["timing"]))   # measured bubble and activations beside the prediction

The gradient applied is the mean of the micro-batches' gradients: for a loss that is a mean
over its batch, exactly the whole batch's. `forward(outputs, micro_batches)` pipelines
inference. `stack(layers, x, devices)` cuts a layer stack into stages of balanced estimated
compute and reports the cut.

A schedule is, per worker, the order of its compute actions, written as PyTorch's pipelining
writes them: "2F0" is stage 2's forward of micro-batch 0, "1B3" stage 1's backward of
micro-batch 3. `simulate` runs a schedule on a clock before any cluster does, with per-stage
costs and the credit windows that bound the tensors in flight on each edge, and reports each
worker's bubble (idle fraction), each stage's peak activations, and the timeline; it refuses a
schedule that deadlocks (naming the wait cycle) or that exceeds a memory budget. Every
Pipeline is simulated before its nodes are added: a refused schedule never reaches a worker.

    s = sl.pipeline.schedule("1f1b", stages=4, micro_batches=8)
    report = sl.pipeline.simulate(s, forward=1.0, backward=2.0, activation_bytes=4 << 20)
    print(report)                  # per worker busy, bubble, peak bytes; per stage; timeline
    report.bubbles                 # [(p - 1) / (m + p - 1)] * p for uniform costs
    mine = sl.pipeline.Schedule.from_csv("0F0,0F1,0B0,0B1\\n1F0,1B0,1F1,1B1\\n")

Generators: "gpipe" (all forwards, then all backwards), "1f1b" (p - s - 1 warm-up forwards on
stage s, then alternating), "interleaved_1f1b" (`workers` workers with `stages_per_worker`
stages each, Megatron's order).
"""

import contextlib

from sluice import array_ops
from sluice import framework
from sluice._core import core as _core

KINDS = ("gpipe", "1f1b", "interleaved_1f1b")


class Schedule:
    """Per worker, the ordered actions ("2F0", ...). `to_csv()` / `from_csv()` use PyTorch's
    pipelining CSV layout (one row per worker)."""

    def __init__(self, rows):
        self.rows = [list(r) for r in rows]

    @classmethod
    def from_csv(cls, text):
        return cls([[c.strip() for c in line.split(",") if c.strip()]
                    for line in text.splitlines() if line.strip()])

    def to_csv(self):
        return "".join(",".join(r) + "\n" for r in self.rows)

    @property
    def num_workers(self):
        return len(self.rows)

    def __repr__(self):
        return "<sluice.pipeline.Schedule workers={}: {}>".format(
            self.num_workers, " | ".join(" ".join(r) for r in self.rows))


def schedule(kind, stages=None, micro_batches=None, workers=None, stages_per_worker=1):
    """A generated schedule: `kind` "gpipe" or "1f1b" over `stages` stages (one per worker), or
    "interleaved_1f1b" over `workers` workers with `stages_per_worker` stages each
    (`micro_batches` a multiple of `workers`)."""
    if kind not in KINDS:
        raise ValueError("schedule kind must be one of {}, got {!r}".format(KINDS, kind))
    if micro_batches is None:
        raise ValueError("schedule needs micro_batches")
    count = workers if kind == "interleaved_1f1b" else stages
    if count is None:
        raise ValueError("schedule {!r} needs {}".format(
            kind, "workers" if kind == "interleaved_1f1b" else "stages"))
    return Schedule.from_csv(_core._pipeline_schedule(kind, int(count), int(micro_batches),
                                                      int(stages_per_worker)))


class Report:
    """What `simulate` found: `makespan`, per worker `workers` (busy, bubble, peak_bytes), per
    stage `stages` (peak_micro_batches, peak_bytes), `timeline` (per worker (action, start,
    end)); str() prints the tables and the timeline."""

    def __init__(self, d):
        self.makespan = d["makespan"]
        self.workers = d["workers"]
        self.stages = d["stages"]
        self.timeline = d["timeline"]
        self._text = d["text"]

    @property
    def bubbles(self):
        """Each worker's idle fraction of the makespan."""
        return [w["bubble"] for w in self.workers]

    @property
    def peak_micro_batches(self):
        """Each stage's most micro-batches whose activations it held at once."""
        return [s["peak_micro_batches"] for s in self.stages]

    def __str__(self):
        return self._text


def _per_stage(value):
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


def simulate(sched, forward=1.0, backward=2.0, transfer=0.0, activation_bytes=0, credits=2,
             memory_budget=None):
    """Simulates `sched` (a Schedule or CSV text). `forward`, `backward`: each action's cost
    (one value, or one per stage); `transfer`: from a stage's end to the next stage's start on
    another worker; `activation_bytes`: what a stage holds per micro-batch from its forward to
    its backward (one value or per stage); `credits`: tensors in flight per edge and direction;
    `memory_budget`: bytes of activations a worker may hold. Raises FailedPreconditionError
    naming the wait cycle when the schedule deadlocks, ResourceExhaustedError with the numbers
    when over the budget, InvalidArgumentError for a malformed schedule."""
    csv = sched.to_csv() if isinstance(sched, Schedule) else str(sched)
    sizes = activation_bytes if isinstance(activation_bytes, (list, tuple)) else [activation_bytes]
    return Report(_core._pipeline_simulate(
        csv, _per_stage(forward), _per_stage(backward), float(transfer),
        [int(b) for b in sizes], int(credits), -1 if memory_budget is None else int(memory_budget)))


# ---------------------------------------------------------------------------------------------
# Running pipelines.


def _stages_of(graph):
    return graph.__dict__.setdefault("_pipeline_stages", {})


@contextlib.contextmanager
def stage(index, device):
    """Operations built in this block form pipeline stage `index` and run on `device` (a
    worker, e.g. "/job:worker/task:1"). A stage may be entered several times (same device);
    stages are numbered 0..p-1 in the order data flows through them."""
    index = int(index)
    if index < 0:
        raise ValueError("a pipeline stage's index must be >= 0, got {}".format(index))
    if not device:
        raise ValueError("pipeline stage {} needs a device".format(index))
    graph = framework.get_default_graph()
    stages = _stages_of(graph)
    if graph.__dict__.get("_pipeline_open") is not None:
        raise ValueError("pipeline stage {} opened inside stage {}".format(
            index, graph.__dict__["_pipeline_open"]))
    known = stages.get(index)
    if known is not None and known[0] != device:
        raise ValueError("pipeline stage {} is on {}, not {}".format(index, known[0], device))
    first = len(graph)
    graph.__dict__["_pipeline_open"] = index
    try:
        with graph.device(device):
            yield
    finally:
        graph.__dict__["_pipeline_open"] = None
        stages.setdefault(index, (device, []))[1].extend(range(first, len(graph)))


def _stage_list(graph):
    stages = _stages_of(graph)
    if not stages:
        raise ValueError("no pipeline stages in this graph: build them in "
                         "`with sl.pipeline.stage(k, device=...)` blocks")
    missing = [k for k in range(max(stages) + 1) if k not in stages]
    if missing:
        raise ValueError("pipeline stages must be numbered 0..{} without gaps; missing {}".format(
            max(stages), missing))
    return [stages[k] for k in range(len(stages))]


def _tensor_list(values):
    if values is None:
        return None
    return [framework.convert_to_tensor(v) for v in
            (values if isinstance(values, (list, tuple)) else [values])]


class Pipeline:
    """How to pipeline a training step: `micro_batches` (m; the batch's dimension 0 must
    divide into m equal parts), `schedule` ("gpipe", "1f1b", "interleaved_1f1b" with
    `stages_per_worker`, or a Schedule / CSV text of one), `inputs` (the tensors to split;
    default: every placeholder a stage reads). The verifier's costs: `forward`, `backward`
    (per action, one value or per stage), `transfer`, `activation_bytes` (per micro-batch;
    default: from the graph's shapes when they are fully defined), `credits` (tensors in
    flight per edge: the data plane's window) and `memory_budget` (bytes of activations a
    worker may hold).

    After `optimizer.minimize(loss, pipeline=p)`: `p.loss` (the mean of the micro-batches'
    losses), `p.report` (the verifier's prediction), `p.schedule`, `p.timing` (fetch it with
    the train op, then `p.measure(values)`)."""

    def __init__(self, micro_batches, schedule="1f1b", stages_per_worker=1, inputs=None,
                 forward=1.0, backward=2.0, transfer=0.0, activation_bytes=None, credits=4,
                 memory_budget=None, name="pipeline"):
        self.micro_batches = int(micro_batches)
        if self.micro_batches < 1:
            raise ValueError("micro_batches must be >= 1, got {}".format(micro_batches))
        self._kind = schedule
        self._stages_per_worker = int(stages_per_worker)
        self._inputs = inputs
        self._costs = (forward, backward, transfer, activation_bytes, credits, memory_budget)
        self._name = name
        self.loss = None
        self.report = None
        self.schedule = None
        self.timing = []
        self.actions = []

    def _schedule_for(self, p):
        kind = self._kind
        if isinstance(kind, Schedule):
            return kind
        if isinstance(kind, str) and kind not in KINDS:
            return Schedule.from_csv(kind)
        if kind == "interleaved_1f1b":
            v = self._stages_per_worker
            if p % v:
                raise ValueError("interleaved_1f1b with {} stages per worker needs a multiple "
                                 "of {} stages, got {}".format(v, v, p))
            return schedule(kind, workers=p // v, micro_batches=self.micro_batches,
                            stages_per_worker=v)
        return schedule(kind, stages=p, micro_batches=self.micro_batches)

    def _build_training(self, graph, loss, var_list):
        if self.loss is not None:
            raise ValueError("this Pipeline already built a training step")
        stages = _stage_list(graph)
        sched = self._schedule_for(len(stages))
        if len(sched.rows) and sum(len(r) for r in sched.rows) != 2 * len(stages) * self.micro_batches:
            raise ValueError("the schedule has {} actions; {} stages x {} micro-batches need {}"
                             .format(sum(len(r) for r in sched.rows), len(stages),
                                     self.micro_batches, 2 * len(stages) * self.micro_batches))
        forward, backward, transfer, activation_bytes, credits, budget = self._costs
        sizes = [0] if activation_bytes is None else (
            list(activation_bytes) if isinstance(activation_bytes, (list, tuple))
            else [activation_bytes])
        built = _core._pipeline_train(
            graph, stages, _tensor_list(self._inputs), loss, list(var_list), sched.to_csv(),
            _per_stage(forward), _per_stage(backward), float(transfer), [int(b) for b in sizes],
            int(credits), -1 if budget is None else int(budget), self._name)
        self.loss = built["loss"]
        self.report = Report(built["report"])
        self.schedule = Schedule.from_csv(built["csv"])
        self.activation_bytes = built["activation_bytes"]
        self.actions = [(a, w) for a, w, _, _ in built["timing"]]
        self.timing = [t for _, _, start, end in built["timing"] for t in (start, end)]
        return list(zip(built["grads"], var_list))

    def measure(self, timing_values):
        """What a run took: `timing_values` are the fetched values of `timing`."""
        if len(timing_values) != len(self.timing):
            raise ValueError("measure needs the {} values of `timing`, got {}".format(
                len(self.timing), len(timing_values)))
        return Measured(self.actions, [float(v) for v in timing_values], self.report)


class Measured:
    """A measured pipelined step: per worker `busy` and `bubbles` (idle fraction of the
    step's span, first action's start to last action's end), per stage
    `peak_micro_batches` (activations held at once: from a forward's start to its backward's
    end), `timeline` (per worker (action, start, end), seconds from the step's start);
    str() prints them beside the prediction. Timestamps come from each worker's system clock:
    exact on one host, off by the clocks' offset across hosts."""

    def __init__(self, actions, values, predicted=None):
        workers = max(w for _, w in actions) + 1
        t0 = min(values[0::2])
        self.makespan = max(values[1::2]) - t0
        self.timeline = [[] for _ in range(workers)]
        for k, (a, w) in enumerate(actions):
            self.timeline[w].append((a, values[2 * k] - t0, values[2 * k + 1] - t0))
        for slots in self.timeline:
            slots.sort(key=lambda s: s[1])
        self.busy = [sum(e - s for _, s, e in slots) for slots in self.timeline]
        span = self.makespan if self.makespan > 0 else 1.0
        self.bubbles = [1.0 - b / span for b in self.busy]
        events = {}
        for slots in self.timeline:
            for a, start, end in slots:
                st = int(a[:a.index("F" if "F" in a else "B")])
                if "F" in a:
                    events.setdefault(st, []).append((start, 1))
                else:
                    events.setdefault(st, []).append((end, -1))
        self.peak_micro_batches = []
        for st in range(max(events) + 1 if events else 0):
            held = peak = 0
            for _, d in sorted(events.get(st, []), key=lambda e: (e[0], e[1])):
                held += d
                peak = max(peak, held)
            self.peak_micro_batches.append(peak)
        self.predicted = predicted

    def __str__(self):
        lines = ["measured step: {:.6f} s".format(self.makespan),
                 "worker  busy s  bubble  predicted bubble"]
        for w, (b, bub) in enumerate(zip(self.busy, self.bubbles)):
            pred = self.predicted.bubbles[w] if self.predicted else float("nan")
            lines.append("{}  {:.6f}  {:.3f}  {:.3f}".format(w, b, bub, pred))
        lines.append("stage  peak micro-batches held  predicted")
        for st, peak in enumerate(self.peak_micro_batches):
            pred = self.predicted.peak_micro_batches[st] if self.predicted else -1
            lines.append("{}  {}  {}".format(st, peak, pred))
        lines.append("timeline (ms from the step's start)")
        for w, slots in enumerate(self.timeline):
            lines.append("worker {}: ".format(w) + " ".join(
                "{}[{:.2f}-{:.2f}]".format(a, s * 1e3, e * 1e3) for a, s, e in slots))
        return "\n".join(lines)


def forward(outputs, micro_batches, inputs=None, name="pipeline"):
    """Pipelined inference: `outputs` (a tensor or list of tensors of the stages) computed
    micro-batch by micro-batch and concatenated in batch order: each equals the output on the
    whole batch. `inputs`: the tensors to split (default: every placeholder a stage reads)."""
    single = not isinstance(outputs, (list, tuple))
    outs = _tensor_list(outputs)
    graph = framework._graph_of(outs)
    built = _core._pipeline_infer(graph, _stage_list(graph), _tensor_list(inputs), outs,
                                  int(micro_batches), name)
    return built["outputs"][0] if single else built["outputs"]


# ---------------------------------------------------------------------------------------------
# Cutting a layer stack into stages.


def _elements(shape, unknown=1):
    dims = shape.as_list() if shape.dims is not None else []
    n = 1
    for d in dims:
        n *= unknown if d is None else d
    return n


def estimate_flops(op):
    """A rough count of the floating-point operations of `op` from its shapes (unknown
    dimensions count as 1): 2 M K N for MatMul, 2 x output x filter / out-channels for Conv2D,
    the output's elements otherwise. Used to balance stages, not to predict time."""
    out = sum(_elements(t.shape) for t in op.outputs)
    if op.type in ("MatMul", "BatchMatMul") and op.inputs:
        rows = op.outputs[0].shape.as_list()[-2] if op.outputs[0].shape.dims else 1
        return 2 * _elements(op.inputs[0].shape) * out // max(rows or 1, 1)
    if op.type.startswith("Conv2D") and len(op.inputs) > 1:
        filt = op.inputs[1].shape.as_list() if op.inputs[1].shape.dims else []
        if len(filt) == 4 and filt[3]:
            return 2 * out * _elements(op.inputs[1].shape) // filt[3]
    return out


def balance(costs, stages):
    """Cuts `costs` (one per layer, in order) into `stages` runs of consecutive layers that
    minimise the largest run's sum; returns the runs as lists of layer indices."""
    n, p = len(costs), int(stages)
    if p < 1 or p > n:
        raise ValueError("cannot cut {} layers into {} stages".format(n, p))
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[k][i]: the smallest largest-run sum of the first i layers in k runs; cut[k][i] where
    # the last run starts.
    best = [[inf] * (n + 1) for _ in range(p + 1)]
    cut = [[0] * (n + 1) for _ in range(p + 1)]
    best[0][0] = 0
    for k in range(1, p + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                v = max(best[k - 1][j], prefix[i] - prefix[j])
                if v < best[k][i]:
                    best[k][i], cut[k][i] = v, j
    runs, i = [], n
    for k in range(p, 0, -1):
        runs.append(list(range(cut[k][i], i)))
        i = cut[k][i]
    return runs[::-1]


class StackPlan:
    """How `stack` cut the layers: `stages` (layer indices per stage), `layer_costs`,
    `stage_costs` (estimated FLOPs); str() prints the table."""

    def __init__(self, stages, layer_costs, devices):
        self.stages = stages
        self.layer_costs = layer_costs
        self.stage_costs = [sum(layer_costs[i] for i in run) for run in stages]
        self.devices = devices

    def __str__(self):
        total = sum(self.stage_costs) or 1
        lines = ["stage  device  layers  estimated FLOPs  share"]
        for s, (run, cost) in enumerate(zip(self.stages, self.stage_costs)):
            lines.append("{}  {}  {}-{}  {}  {:.2f}".format(
                s, self.devices[s], run[0], run[-1], cost, cost / total))
        return "\n".join(lines)


def stack(layers, inputs, devices, layer_costs=None):
    """Builds `layers` (callables: the first takes `inputs`, each the previous one's output)
    as len(devices) pipeline stages of consecutive layers with balanced estimated compute
    (`estimate_flops` of the operations each layer runs per batch, those reading its input,
    counted by building the stack once in a scratch graph; or `layer_costs`, one number per
    layer). Stage s runs on devices[s]. Layers are built inside the stage blocks, so their
    variables live on their stage's device; build the loss afterwards in
    `with sl.pipeline.stage(len(devices) - 1, devices[-1]):`. Returns (the last layer's
    output, a StackPlan reporting the cut and each stage's estimated cost)."""
    layers = list(layers)
    if not layers:
        raise ValueError("stack needs at least one layer")
    if layer_costs is None:
        x = framework.convert_to_tensor(inputs)
        scratch = framework.Graph()
        layer_costs = []
        with scratch.as_default():
            h = array_ops.placeholder(x.dtype, x.shape)  # Like `inputs`, for the dry build.
            live = {h.op.name}  # Operations that run per batch: those reading the input.
            for layer in layers:
                first = len(scratch)
                h = layer(h)
                cost = 0
                for op in scratch.get_operations()[first:]:
                    if any(t.op.name in live for t in op.inputs):
                        live.add(op.name)
                        cost += estimate_flops(op)
                layer_costs.append(cost)
    elif len(layer_costs) != len(layers):
        raise ValueError("layer_costs has {} values for {} layers".format(
            len(layer_costs), len(layers)))
    runs = balance(layer_costs, len(devices))
    h = inputs
    for s, run in enumerate(runs):
        with stage(s, devices[s]):
            for i in run:
                h = layers[i](h)
    return h, StackPlan(runs, list(layer_costs), list(devices))
