"""Traced runs (sl.RunOptions(trace_level=FULL_TRACE), sl.RunMetadata) in process and on a
LocalCluster of real server processes: every node that ran is recorded once on the task that
ran it, the two ends of a transfer share a key and the receiver the bytes, the master's and the
workers' call times are ordered, and sl.trace turns it into a Chrome trace (a process per task,
a flow arrow per transfer), an SVG picture, the hops and a summary."""

import json

import numpy as np
import pytest

import sluice as sl

FULL = sl.RunOptions(trace_level=sl.RunOptions.FULL_TRACE)


def test_in_process_trace_records_each_node_once():
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [2], name="x")
        y = sl.multiply(x, 3.0, name="y")
        z = sl.add(y, 1.0, name="z")
    md = sl.RunMetadata()
    with sl.Session(graph=g) as sess:
        assert sess.run(z, {x: [1, 2]}).tolist() == [4, 7]  # Untraced: nothing recorded.
        assert md.step_stats is None
        out = sess.run(z, {x: [1, 2]}, options=FULL, run_metadata=md)
    assert out.tolist() == [4, 7]
    (task,) = md.step_stats["tasks"]
    assert task["task"] == "localhost"
    ran = sorted(n["node"] for n in task["nodes"])
    assert "y" in ran and "z" in ran and "x" not in ran  # A fed placeholder does not run.
    assert len(ran) == len(set(ran))
    for n in task["nodes"]:
        assert md.step_stats["client_sent_ns"] <= n["start_ns"] <= n["end_ns"]
        assert n["end_ns"] <= md.step_stats["client_done_ns"]
    with pytest.raises(ValueError, match="a traced run needs a RunMetadata"):
        sl.Session(graph=g).run(z, {x: [1, 2]}, options=FULL)


def test_a_traced_step_on_a_cluster_pairs_its_transfer_and_orders_its_calls():
    with sl.LocalCluster(workers=2) as c:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                a = sl.constant(np.arange(6, dtype=np.float32), name="a")
            with sl.device("/job:worker/task:1"):
                b = sl.add(a, 1.0, name="b")
        md = sl.RunMetadata()
        with sl.Session(c.target, graph=g) as sess:
            sess.run(b)
            out = sess.run(b, options=FULL, run_metadata=md)
    np.testing.assert_array_equal(out, np.arange(6) + 1)
    stats = md.step_stats
    tasks = {t["task"]: t for t in stats["tasks"]}
    assert set(tasks) == {"/job:worker/task:0", "/job:worker/task:1"}
    send = [n for n in tasks["/job:worker/task:0"]["nodes"] if n["op"] == "_Send"]
    recv = [n for n in tasks["/job:worker/task:1"]["nodes"] if n["op"] == "_Recv"]
    assert len(send) == 1 and len(recv) == 1
    assert send[0]["transfer"] == recv[0]["transfer"] == (
        "/job:worker/task:0/device:cpu:0;/job:worker/task:1/device:cpu:0;a:0")
    assert recv[0]["bytes"] == send[0]["bytes"] == 6 * 4
    assert "b" in {n["node"] for n in tasks["/job:worker/task:1"]["nodes"]}
    # One host, one clock: every call's times are ordered as the calls happened.
    assert stats["client_sent_ns"] <= stats["master_received_ns"]
    assert stats["master_replied_ns"] <= stats["client_done_ns"]
    for t in stats["tasks"]:
        assert stats["master_received_ns"] <= t["call_sent_ns"] <= t["received_ns"]
        assert t["received_ns"] <= t["replied_ns"] <= t["call_done_ns"]
        assert t["call_done_ns"] <= stats["master_replied_ns"]
        assert t["clock_error_ns"] >= 0 and abs(t["clock_offset_ns"]) <= t["clock_error_ns"]

    trace = json.loads(json.dumps(sl.trace.chrome_trace(md, align_clocks=False)))
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names == {"client", "master", "/job:worker/task:0", "/job:worker/task:1"}
    flows = [e for e in events if e.get("cat") == "transfer"]
    assert [e["ph"] for e in flows] == ["s", "f"]
    slices = {e["name"]: e for e in events if e["ph"] == "X"}
    assert slices["b"]["args"]["op"] == "Add" and slices["b"]["pid"] == flows[1]["pid"]
    assert flows[0]["pid"] == slices["a"]["pid"]

    hops = dict(sl.trace.hops(md, align_clocks=False))
    assert set(hops) >= {"client -> master", "master -> /job:worker/task:1",
                         "/job:worker/task:1 runs its partition", "master -> client",
                         "transfer a:0 /job:worker/task:0/device:cpu:0 -> "
                         "/job:worker/task:1/device:cpu:0", "step (client)"}
    assert all(v >= 0 for v in hops.values())
    text = sl.trace.summary(md)
    assert "received 24 bytes in 1 tensor(s) over /job:worker/task:0/device:cpu:0 -> " \
           "/job:worker/task:1/device:cpu:0" in text
    svg = sl.trace.to_svg(md, align_clocks=False)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 1 + len(slices) and svg.count('stroke="#c00"') == 1
    assert ">/job:worker/task:1 t" in svg and "<title>b (Add)" in svg
    with pytest.raises(ValueError, match="no trace"):
        sl.trace.summary(sl.RunMetadata())


def test_the_placed_graph_as_graphviz():
    import shutil
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            a = sl.constant([1.0, 2.0], name="a")
        with sl.device("/job:worker/task:1"):
            sl.add(a, 1.0, name="b")
    dot = g.to_dot(title="two workers")
    assert dot.startswith('digraph "two workers" {')
    assert 'label="/job:worker/task:0/device:cpu:0"' in dot
    assert 'label="/job:worker/task:1/device:cpu:0"' in dot
    assert 'label="float32 [2]\\n8 B"' in dot  # The one transfer, worker 0 -> worker 1.
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="needs Graphviz's `dot`"):
            g.to_svg()
    else:
        assert "<svg" in g.to_svg()
