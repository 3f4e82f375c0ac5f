"""Traces of one step (`sl.trace`): what every node on every task did, as a Chrome trace and as
tables.

    md = sl.RunMetadata()
    sess.run(train_op, feed, options=sl.RunOptions(trace_level=sl.RunOptions.FULL_TRACE),
             run_metadata=md)
    with open("step.json", "w") as f:
        json.dump(sl.trace.chrome_trace(md), f)   # open in Perfetto or chrome://tracing
    print(sl.trace.summary(md))                   # time per op type, transfers, the hops
    open("step.svg", "w").write(sl.trace.to_svg(md))  # a picture of the same

Each task's times are taken on its own clock; the master estimates each worker's offset from
the RunGraph call as NTP does (the call's two legs assumed equally long; the error is at most
half the call's round trip less the worker's time, `clock_error_ns`), and the client's offset to
the master the same way from the RunStep call. `align_clocks=False` keeps the raw clocks: right
when every process runs on one host (the same clock), where aligning would split each call's
round trip into two equal legs.
"""

_MASTER, _CLIENT = "master", "client"


def _stats(run_metadata):
    stats = getattr(run_metadata, "step_stats", run_metadata)
    if not stats:
        raise ValueError("no trace: run with options=sl.RunOptions(trace_level="
                         "sl.RunOptions.FULL_TRACE) and a run_metadata")
    return stats


class _Clocks:
    """Converts each task's and the client's times to the master's clock."""

    def __init__(self, stats, align):
        self.align = align
        self.client = 0
        if align:
            self.client = ((stats["master_received_ns"] - stats["client_sent_ns"]) +
                           (stats["master_replied_ns"] - stats["client_done_ns"])) // 2

    def task(self, task, t):
        return t - task["clock_offset_ns"] if self.align else t

    def from_client(self, t):
        return t + self.client


def chrome_trace(run_metadata, align_clocks=True):
    """The step as Chrome's trace-event JSON (a dict; json.dump it): a process per task (and
    the master and the client), a track per thread, a slice per node (args: op, device, a
    transfer's bytes), the RunStep and RunGraph calls, and a flow arrow from each _Send to its _Recv.
    Timestamps in microseconds from the client's send."""
    stats = _stats(run_metadata)
    clocks = _Clocks(stats, align_clocks)
    t0 = clocks.from_client(stats["client_sent_ns"])

    def us(t):
        return (t - t0) / 1e3

    events = []

    def process(pid, name):
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}})

    process(0, _CLIENT)
    events.append({"name": "Session.run", "ph": "X", "pid": 0, "tid": 0, "ts": 0.0,
                   "dur": us(clocks.from_client(stats["client_done_ns"])), "cat": "call"})
    process(1, _MASTER)
    events.append({"name": "RunStep", "ph": "X", "pid": 1, "tid": 0,
                   "ts": us(stats["master_received_ns"]), "cat": "call",
                   "dur": (stats["master_replied_ns"] - stats["master_received_ns"]) / 1e3})
    sends, recvs = {}, {}
    for k, task in enumerate(stats["tasks"]):
        pid = k + 2
        process(pid, task["task"])
        events.append({"name": "RunGraph " + task["task"], "ph": "X", "pid": 1, "tid": k + 1,
                       "ts": us(task["call_sent_ns"]), "cat": "call",
                       "dur": (task["call_done_ns"] - task["call_sent_ns"]) / 1e3,
                       "args": {"clock_offset_us": task["clock_offset_ns"] / 1e3,
                                "clock_error_us": task["clock_error_ns"] / 1e3}})
        threads = set()
        for n in task["nodes"]:
            threads.add(n["thread"])
            start = us(clocks.task(task, n["start_ns"]))
            args = {"op": n["op"], "device": n["device"]}
            if n["bytes"] >= 0:
                args["bytes"] = n["bytes"]
            if n["transfer"]:
                args["transfer"] = n["transfer"]
                (sends if n["op"] == "_Send" else recvs)[n["transfer"]] = (
                    pid, n["thread"], start, us(clocks.task(task, n["end_ns"])))
            events.append({"name": n["node"], "cat": n["op"], "ph": "X", "pid": pid,
                           "tid": n["thread"], "ts": start,
                           "dur": (n["end_ns"] - n["start_ns"]) / 1e3, "args": args})
        for tid in sorted(threads):
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": "thread %d" % tid}})
    for flow, key in enumerate(sorted(set(sends) & set(recvs))):
        spid, stid, sstart, _ = sends[key]
        rpid, rtid, _, rend = recvs[key]
        events.append({"name": "transfer", "cat": "transfer", "ph": "s", "id": flow,
                       "pid": spid, "tid": stid, "ts": sstart})
        events.append({"name": "transfer", "cat": "transfer", "ph": "f", "bp": "e", "id": flow,
                       "pid": rpid, "tid": rtid, "ts": rend})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def hops(run_metadata, align_clocks=True):
    """Where the step's time went, hop by hop, as [(what, microseconds)]: client -> master,
    the master before its RunGraph calls, per task master -> task, the task's run, task ->
    master, the master after the calls, master -> client; and per transfer _Send start ->
    _Recv end."""
    stats = _stats(run_metadata)
    c = _Clocks(stats, align_clocks)
    out = [("client -> master", stats["master_received_ns"] -
            c.from_client(stats["client_sent_ns"]))]
    tasks = stats["tasks"]
    if tasks:
        out.append(("master: before RunGraph", min(t["call_sent_ns"] for t in tasks) -
                    stats["master_received_ns"]))
    sends, recvs = {}, {}
    for t in tasks:
        name = t["task"]
        out.append(("master -> " + name, c.task(t, t["received_ns"]) - t["call_sent_ns"]))
        out.append((name + " runs its partition", t["replied_ns"] - t["received_ns"]))
        out.append((name + " -> master", t["call_done_ns"] - c.task(t, t["replied_ns"])))
        for n in t["nodes"]:
            if n["transfer"]:
                side = sends if n["op"] == "_Send" else recvs
                side[n["transfer"]] = c.task(t, n["start_ns" if n["op"] == "_Send" else
                                                 "end_ns"])
    if tasks:
        out.append(("master: after RunGraph", stats["master_replied_ns"] -
                    max(t["call_done_ns"] for t in tasks)))
    out.append(("master -> client", c.from_client(stats["client_done_ns"]) -
                stats["master_replied_ns"]))
    for key in sorted(set(sends) & set(recvs)):
        src, dst, tensor = key.split(";", 2)
        out.append(("transfer {} {} -> {}".format(tensor, src, dst), recvs[key] - sends[key]))
    out.append(("step (client)", stats["client_done_ns"] - stats["client_sent_ns"]))
    return [(what, ns / 1e3) for what, ns in out]


def summary(run_metadata, align_clocks=True):
    """A printable summary: per task the time and count per op type (largest first), the
    bytes received per transfer edge, and the hops (see `hops`)."""
    stats = _stats(run_metadata)
    lines = []
    for t in stats["tasks"]:
        per_op = {}
        for n in t["nodes"]:
            total, count = per_op.get(n["op"], (0, 0))
            per_op[n["op"]] = (total + n["end_ns"] - n["start_ns"], count + 1)
        lines.append("{} ({} nodes)".format(t["task"], len(t["nodes"])))
        lines.append("  op  count  total us")
        for op, (total, count) in sorted(per_op.items(), key=lambda kv: -kv[1][0]):
            lines.append("  {}  {}  {:.1f}".format(op, count, total / 1e3))
        edges = {}
        for n in t["nodes"]:
            if n["op"] == "_Recv" and n["transfer"]:
                src, dst, _ = n["transfer"].split(";", 2)
                total, count = edges.get((src, dst), (0, 0))
                edges[(src, dst)] = (total + max(n["bytes"], 0), count + 1)
        for (src, dst), (total, count) in sorted(edges.items()):
            lines.append("  received {} bytes in {} tensor(s) over {} -> {}".format(
                total, count, src, dst))
    lines.append("hops (us)")
    for what, micros in hops(run_metadata, align_clocks):
        lines.append("  {}  {:.1f}".format(what, micros))
    return "\n".join(lines)


def to_svg(run_metadata, align_clocks=True, width=1100):
    """The step as an SVG picture (a string): a row per task thread (and the master's calls),
    a box per node coloured by op type and labelled where it fits, an arrow per transfer from
    its _Send to its _Recv, microseconds along the top."""
    trace = chrome_trace(run_metadata, align_clocks)["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in trace if e["name"] == "process_name"}
    slices = [e for e in trace if e["ph"] == "X"]
    rows = sorted({(e["pid"], e["tid"]) for e in slices})
    row_of = {r: i for i, r in enumerate(rows)}
    end = max(e["ts"] + e["dur"] for e in slices) or 1.0
    left, row_h, top = 190, 22, 24
    scale = (width - left - 10) / end

    def x(ts):
        return left + ts * scale

    def colour(op):
        h = sum(ord(ch) * 31 ** i for i, ch in enumerate(op)) % 360
        return "hsl({},60%,70%)".format(h)

    def esc(text):
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    height = top + row_h * len(rows) + 10
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
           'font-family="monospace" font-size="10">'.format(width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    step, k = 1, 0  # Ticks every 1, 2, 5, 10, 20, 50, ... us: at most 10 of them.
    while end / step > 10:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    for t in range(0, int(end) + 1, step):
        out.append('<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#ddd"/>'
                   '<text x="{0:.1f}" y="14">{3} us</text>'.format(x(t), top - 6, height, t))
    for (pid, tid), i in row_of.items():
        y = top + i * row_h
        label = names.get(pid, str(pid)) + ("" if pid < 2 else " t{}".format(tid % 100000))
        out.append('<text x="4" y="{}">{}</text>'.format(y + 14, esc(label)))
    for e in slices:
        y = top + row_of[(e["pid"], e["tid"])] * row_h
        w = max(e["dur"] * scale, 1.0)
        out.append('<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}" stroke="#555" '
                   'stroke-width="0.3"><title>{} ({}) {:.1f} us</title></rect>'.format(
                       x(e["ts"]), y + 2, w, row_h - 4, colour(e.get("cat", "")),
                       esc(e["name"]), esc(e.get("cat", "")), e["dur"]))
        if w > 7 * len(e["name"]):
            out.append('<text x="{:.1f}" y="{}">{}</text>'.format(x(e["ts"]) + 2, y + 14,
                                                                  esc(e["name"])))
    flows = {}
    for e in trace:
        if e.get("cat") == "transfer":
            flows.setdefault(e["id"], {})[e["ph"]] = e
    for f in flows.values():
        if "s" in f and "f" in f:
            y1 = top + row_of[(f["s"]["pid"], f["s"]["tid"])] * row_h + row_h / 2
            y2 = top + row_of[(f["f"]["pid"], f["f"]["tid"])] * row_h + row_h / 2
            out.append('<line x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}" stroke="#c00" '
                       'stroke-width="1.2"/><circle cx="{:.1f}" cy="{}" r="2.5" fill="#c00"/>'
                       .format(x(f["s"]["ts"]), y1, x(f["f"]["ts"]), y2, x(f["f"]["ts"]), y2))
    out.append("</svg>")
    return "\n".join(out)
