"""Pipeline schedules and their verifier (`sl.pipeline`; C++: distributed/pipeline_schedule.h).

A pipeline cuts a model into stages on different workers and a batch into micro-batches that
flow through them. A schedule is, per worker, the order of its compute actions, written as
PyTorch's pipelining writes them: "2F0" is stage 2's forward of micro-batch 0, "1B3" stage 1's
backward of micro-batch 3. `simulate` runs a schedule on a clock before any cluster does, with
per-stage costs and the credit windows that bound the tensors in flight on each edge, and
reports each worker's bubble (idle fraction), each stage's peak activations, and the timeline;
it refuses a schedule that deadlocks (naming the wait cycle) or that exceeds a memory budget.

    s = sl.pipeline.schedule("1f1b", stages=4, micro_batches=8)
    report = sl.pipeline.simulate(s, forward=1.0, backward=2.0, activation_bytes=4 << 20)
    print(report)                  # per worker busy, bubble, peak bytes; per stage; timeline
    report.bubbles                 # [(p - 1) / (m + p - 1)] * p for uniform costs
    mine = sl.pipeline.Schedule.from_csv("0F0,0F1,0B0,0B1\\n1F0,1B0,1F1,1B1\\n")

Generators: "gpipe" (all forwards, then all backwards), "1f1b" (p - s - 1 warm-up forwards on
stage s, then alternating), "interleaved_1f1b" (`workers` workers with `stages_per_worker`
stages each, Megatron's order). Running a pipelined model on a cluster is not built yet.
"""

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
