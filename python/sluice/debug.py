"""Hang reports (`sl.debug`): ask every task what it is doing and explain a stuck step.

    report = sl.debug.inspect(cluster)        # a LocalCluster, or {task name: control address}
    print(report)

For each task and each step it runs: the receives waiting for a tensor (which peer task sends
it, and what that peer says about it: sent and not yet consumed, waiting for a credit, not sent
yet), the tensors that arrived and wait for their receive, and each edge's credits. Then the
waits-for graph across tasks (task A -> task B: A waits for a tensor from B, or its
bounded-staleness pull waits for B's push), with any cycle marked, and the tasks that did not
answer (stopped, lost). The questions go over the control plane (the Inspect RPC), which
answers while the data plane is wedged.

`sleep(x, microseconds)` is an op of known duration, for benchmarks and tests.
"""

import re

from sluice import framework
from sluice._core import core as _core

_KEY = re.compile(r"^(-?\d+);([^;]*);([^;]*);([^;]*);(\d+)$")


def _task_of(device):
    m = re.match(r"^(/job:[^/]+/task:\d+)", device)
    return m.group(1) if m else device


def _parse_key(key):
    m = _KEY.match(key)
    if not m:
        return None
    return dict(step=int(m.group(1)), src=_task_of(m.group(2)), dst=_task_of(m.group(3)),
                edge=m.group(4), micro_batch=int(m.group(5)))


class Report:
    """What `inspect` found: `tasks` ({task: the Inspect answer, or None}), `unanswered`
    ({task: why}), `waits` ([(waiting task, peer task, step, key, what the peer says)]),
    `cycles` (lists of tasks); str() prints it."""

    def __init__(self, tasks, unanswered, waits, cycles, ps_edges=()):
        self.tasks, self.unanswered, self.waits, self.cycles = tasks, unanswered, waits, cycles
        self._ps_edges = set(ps_edges)  # (waiter, peer) through a bounded-staleness pull.

    def __str__(self):
        lines = []
        for task in sorted(self.tasks):
            state = self.tasks[task]
            if state is None:
                lines.append("{}: no answer ({})".format(task, self.unanswered[task]))
                continue
            running = [s for s in state["steps"] if s["running"] or s["waiting"]]
            lines.append("{}: {} step(s) running".format(task, len(running)))
            for s in running:
                lines.append("  step {}: {} receive(s) waiting, {} tensor(s) buffered".format(
                    s["step_id"], len(s["waiting"]), len(s["buffered"])))
                for key in s["waiting"]:
                    lines.append("    waits for {}".format(key))
            for w in state.get("ps_waits", ()):
                lines.append("  ps: worker {}'s pull of {} waits for pushes from worker(s) "
                             "{}".format(w["worker"], w["variable"],
                                         ", ".join(str(b) for b in w["behind"]) or
                                         "(the synchronous update)"))
            for e in state["edges"]:
                lines.append("  edge {}: {} in flight (window {}), {} send(s) waiting for "
                             "credit{}".format(e["edge"], e["in_flight"], e["window"],
                                               e["waiting_senders"],
                                               "; broken: " + e["broken"] if e["broken"] else ""))
        lines.append("waits-for:")
        if not self.waits:
            lines.append("  nothing waits")
        for waiter, peer, step, key, why in self.waits:
            lines.append("  {} -> {} (step {}, {}): {}".format(waiter, peer, step, key, why))
        for cycle in self.cycles:
            hops = list(zip(cycle, cycle[1:] + cycle[:1]))
            lines.append("  CYCLE: " + " -> ".join(cycle + [cycle[0]]) + (
                " (through a ps pull: it ends if the awaited worker pushes from another step)"
                if any(h in self._ps_edges for h in hops) else ""))
        return "\n".join(lines)


def _peer_says(peer_state, waiter, step):
    """What the sending task's edge to `waiter` says of `step`'s tensors."""
    if peer_state is None:
        return "the sender did not answer (stopped or lost)"
    for e in peer_state["edges"]:
        if e["edge"].endswith("->" + waiter):
            if e["broken"]:
                return "its edge is broken: " + e["broken"]
            if e["step_in_flight"].get(step, 0) > 0:
                return "sent, not yet consumed"
            if e["waiting_senders"] > 0:
                return "the sender waits for a credit from the receiver"
    running = any(s["step_id"] == step and s["running"] for s in peer_state["steps"])
    return ("not sent yet (the sender runs the step)" if running
            else "not sent: the sender does not run the step (not yet, or no more)")


def _cycles(graph):
    """Cycles of a small directed graph {node: {successors}}, each once."""
    found, seen = [], set()

    def walk(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle)
            else:
                walk(nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def inspect(cluster, timeout=5.0):
    """A Report of what every task is doing: `cluster` is a LocalCluster, a ClusterSpec (or
    its dict, or its text "worker=host:port,...;ps=..."), {task name: control address}, or one
    task's address ("grpc://host:port", e.g. the master's: it reports the cluster's tasks).
    Tasks that do not answer within `timeout` seconds are reported so."""
    from sluice import distributed
    if isinstance(cluster, str) and "=" not in cluster:
        # One task's (the master's) control address: it knows the cluster's tasks.
        address = cluster.strip()
        if address.startswith("grpc://"):
            address = address[len("grpc://"):]
        cluster = _core._inspect(address, float(timeout))["cluster"]
        if not cluster:
            raise ValueError("the task at {} has no cluster spec to report; give the cluster's "
                             "tasks ('worker=h:p,h:p;ps=h:p')".format(address))
    if isinstance(cluster, str) or (isinstance(cluster, dict) and
                                    all(isinstance(v, list) for v in cluster.values())):
        cluster = distributed.ClusterSpec(cluster)
    if isinstance(cluster, distributed.ClusterSpec):
        addresses = {"/job:{}/task:{}".format(job, i): cluster.task_address(job, i)
                     for job in cluster.jobs if job != "master"
                     for i in cluster.task_indices(job)}
    elif isinstance(cluster, dict):
        addresses = dict(cluster)
    else:
        addresses = {"/job:worker/task:{}".format(i): cluster.worker_address(i)[0]
                     for i in range(cluster.num_workers)}
        addresses.update({"/job:ps/task:{}".format(i): cluster.ps_address(i)[0]
                          for i in range(cluster.num_ps)})
    tasks, unanswered = {}, {}
    for name, address in addresses.items():
        try:
            tasks[name] = _core._inspect(address, float(timeout))
        except Exception as e:  # noqa: BLE001  Any failure to answer is part of the report.
            tasks[name] = None
            unanswered[name] = str(e).splitlines()[0]
    waits, graph, ps_edges = [], {}, []
    for name, state in tasks.items():
        if state is None:
            continue
        for s in state["steps"]:
            for key in s["waiting"]:
                parsed = _parse_key(key)
                if parsed is None or parsed["src"] == name:
                    continue
                peer = parsed["src"]
                why = _peer_says(tasks.get(peer), name, s["step_id"])
                waits.append((name, peer, s["step_id"], parsed["edge"], why))
                graph.setdefault(name, set()).add(peer)
    # A bounded-staleness pull waits for the workers behind it: worker index i of the ps ops
    # is taken to be task /job:worker/task:i (the convention sl.ps and the strategies use).
    for name, state in tasks.items():
        for w in (state or {}).get("ps_waits", ()):
            waiter = "/job:worker/task:{}".format(w["worker"])
            for b in w["behind"]:
                peer = "/job:worker/task:{}".format(b)
                if peer == waiter:
                    continue
                waits.append((waiter, peer, None, "pull of " + w["variable"],
                              "waits for its push (bounded staleness, on {})".format(name)))
                graph.setdefault(waiter, set()).add(peer)
                ps_edges.append((waiter, peer))
    # A sender waiting for credits waits for its receiver.
    for name, state in tasks.items():
        for e in (state or {}).get("edges", ()):
            if e["waiting_senders"] > 0:
                receiver = e["edge"].split("->")[-1]
                waits.append((name, receiver, None, e["edge"], "waits for a credit"))
                graph.setdefault(name, set()).add(receiver)
    return Report(tasks, unanswered, waits, _cycles(graph), ps_edges)


def sleep(x, microseconds, gradient_microseconds=0, name=None):
    """`x`, forwarded after waiting `microseconds` (the thread sleeps: no core is used); its
    gradient waits `gradient_microseconds`. An op of known duration for benchmarks and tests
    (bench/pipeline_bench.py times pipeline stages with it)."""
    return framework._op("Sleep", [x], {"microseconds": int(microseconds),
                                        "gradient_microseconds": int(gradient_microseconds)},
                         name=name).outputs[0]


def main(argv=None):
    """`python3 -m sluice.debug MASTER_ADDRESS` (or a cluster spec 'worker=h:p,h:p;ps=h:p'):
    prints the hang report of a cluster."""
    import argparse
    parser = argparse.ArgumentParser(prog="python3 -m sluice.debug",
                                     description="Why does a step hang? Asks every task.")
    parser.add_argument("cluster", help="the master's address (grpc://host:port, or any task's: "
                        "it reports the others) or the tasks: 'worker=h:p,h:p;ps=h:p'")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds each task has to answer")
    args = parser.parse_args(argv)
    print(inspect(args.cluster, timeout=args.timeout))


if __name__ == "__main__":
    main()

