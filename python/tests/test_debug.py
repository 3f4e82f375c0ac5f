"""sl.debug.inspect on real servers: a step held up on worker 0 (a bounded-staleness pull that
waits for the other worker's push) leaves worker 1's receive waiting; the report names the
receive, the sending task and what the sender says, over the control plane, while the step
hangs; the step then finishes when the push comes."""

import contextlib
import re
import threading
import time

import numpy as np

import sluice as sl


@contextlib.contextmanager
def held_step(cluster):
    """Runs, on a thread, a step that worker 0 holds up: its bounded-staleness pull waits for
    worker 1's push, so worker 1's receive of the pulled value waits. Yields the thread's result
    dict; on leaving, worker 1's push lets the step finish."""
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            w = sl.Variable(np.ones(3), name="w")
            pulled = sl.ps.pull(w, worker=0, staleness=0, workers=2)
            mine = sl.ps.push(w, np.zeros(3), worker=0)
            theirs = sl.ps.push(w, np.zeros(3), worker=1)
        with sl.device("/job:worker/task:1"):
            total = sl.reduce_sum(pulled * 2.0)
        init = sl.global_variables_initializer()
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        sess.run(mine)  # Worker 0 is one push ahead: its next pull waits for worker 1.
        result = {}
        step = threading.Thread(target=lambda: result.update(total=sess.run(total)))
        step.start()
        try:
            yield result
        finally:
            sess.run(theirs)  # Worker 1's push lets the pull through; the step ends.
            step.join(timeout=30)


def test_a_held_up_step_is_explained_while_it_hangs():
    with sl.LocalCluster(workers=2) as cluster:
        with held_step(cluster) as result:
            deadline = time.monotonic() + 30
            while True:  # Until both workers run the step and worker 1's receive waits.
                report = sl.debug.inspect(cluster)
                waits = [w_ for w_ in report.waits if w_[0] == "/job:worker/task:1" and
                         w_[4] == "not sent yet (the sender runs the step)"]
                # ... and worker 0's pull waits too.
                if (waits and report.cycles) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)  # Polling a condition, bounded by the deadline.
            assert waits, str(report)
            waiter, peer, step_id, edge, why = waits[0]
            assert peer == "/job:worker/task:0" and step_id is not None
            assert why == "not sent yet (the sender runs the step)", str(report)
            text = str(report)
            assert "/job:worker/task:1: 1 step(s) running" in text
            assert "waits for {};/job:worker/task:0".format(step_id) in text
            assert "/job:worker/task:1 -> /job:worker/task:0 (step {}".format(step_id) in text
            assert not report.unanswered
            # Worker 0's pull waits for worker 1's push (which a later step brings): a cycle
            # through a ps pull, marked as one that another step can end.
            assert report.cycles == [["/job:worker/task:0", "/job:worker/task:1"]]
            assert ("CYCLE: /job:worker/task:0 -> /job:worker/task:1 -> /job:worker/task:0 "
                    "(through a ps pull: it ends if the awaited worker pushes from another "
                    "step)") in text
        assert result["total"] == 6.0


def test_a_task_that_does_not_answer_and_a_cycle_are_reported():
    report = sl.debug.inspect({"/job:worker/task:9": "127.0.0.1:1"}, timeout=1)
    assert report.tasks == {"/job:worker/task:9": None}
    assert "/job:worker/task:9: no answer (" in str(report)
    cycles = sl.debug._cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycles == [["a", "b", "c"]]


def test_the_command_line_form_reads_a_cluster_spec(capsys):
    with sl.LocalCluster(workers=2) as cluster:
        spec = "worker={},{}".format(cluster.worker_address(0)[0], cluster.worker_address(1)[0])
        sl.debug.main([spec])
    out = capsys.readouterr().out
    assert "/job:worker/task:0: 0 step(s) running" in out
    assert "/job:worker/task:1: 0 step(s) running" in out
    assert "nothing waits" in out


def test_the_master_reports_a_step_that_runs_too_long(capfd):
    """--slow_step_report_ms: the master prints, once, what each task of a held-up step says."""
    with sl.LocalCluster(workers=2, master_flags=["--slow_step_report_ms=300"]) as cluster:
        with held_step(cluster):
            said, deadline = "", time.monotonic() + 30
            while "tensor(s) buffered" not in said.split("has run for")[-1] and \
                    time.monotonic() < deadline:
                time.sleep(0.05)  # Polling the relayed stderr, bounded by the deadline.
                said += capfd.readouterr().err
    report = said[said.index("sluice master: step"):]
    assert re.search(r"sluice master: step \d+ has run for \d", report), report
    assert "/job:worker/task:1: runs it; 1 receive(s) waiting: 'PsPull:0' from " \
           "/job:worker/task:0; 0 tensor(s) buffered" in report, report
    assert "/job:worker/task:0: runs it; 0 receive(s) waiting" in report, report
    assert said.count("has run for") == 1  # Once per step.


def test_the_master_address_alone_finds_every_task(capsys):
    with sl.LocalCluster(workers=2) as cluster:
        report = sl.debug.inspect(cluster.target)
        assert set(report.tasks) == {"/job:worker/task:0", "/job:worker/task:1"}
        sl.debug.main([cluster.target])
    out = capsys.readouterr().out
    assert "/job:worker/task:0: 0 step(s) running" in out
    assert "/job:worker/task:1: 0 step(s) running" in out


def test_a_stopped_worker_is_named_while_the_step_waits_for_it():
    """Worker 1 is SIGSTOPped: it cannot answer anything. Worker 0's receive of worker 1's
    tensor waits; the report, from the master's address, names worker 1 as not answering and
    worker 0 as waiting for it."""
    import os
    import signal
    # The master keeps worker 1 for the whole test: with the default 5 s heartbeat timeout it
    # could give it up (ending the step) before a slow machine's polling saw the wait.
    with sl.LocalCluster(workers=2, master_flags=["--heartbeat_timeout_ms=120000"]) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:1"):
                far = sl.constant([1.0, 2.0]) * 3.0
            with sl.device("/job:worker/task:0"):
                total = sl.reduce_sum(far + 1.0)
        config = sl.ConfigProto(step_timeout_seconds=60)
        with sl.Session(cluster.target, graph=g, config=config) as sess:
            assert sess.run(total) == 11.0
            pid = cluster._cluster.worker_pid(1)
            os.kill(pid, signal.SIGSTOP)
            result = {}

            def run():
                try:
                    result["total"] = sess.run(total)
                except sl.errors.OpError as e:
                    result["error"] = e
            step = threading.Thread(target=run)
            try:
                step.start()
                deadline = time.monotonic() + 30
                while True:  # Until worker 0 runs the step and its receive waits.
                    report = sl.debug.inspect(cluster.target, timeout=1)
                    waits = [w_ for w_ in report.waits if w_[0] == "/job:worker/task:0"]
                    if waits or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)  # Polling a condition, bounded by the deadline.
                assert waits, str(report)
                assert waits[0][1] == "/job:worker/task:1"
                assert "/job:worker/task:1" in report.unanswered, str(report)
                assert "/job:worker/task:1: no answer (" in str(report)
            finally:
                os.kill(pid, signal.SIGCONT)
                step.join(timeout=60)
            assert not step.is_alive()
            # Either the step finished once worker 1 went on, or the master had given worker 1
            # up as lost meanwhile (missed heartbeats); it never hangs.
            assert result.get("total") == 11.0 or "/job:worker/task:1" in str(result["error"])


def test_two_workers_waiting_for_each_other_are_a_cycle():
    """Within one step worker 0's bounded-staleness pull waits for worker 1's push, and that
    push's value needs what worker 0 pulls: each waits for the other. The report names both
    waits and marks the cycle; the step ends at its deadline."""
    with sl.LocalCluster(workers=2) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                w = sl.Variable(np.ones(3), name="w")
                mine = sl.ps.push(w, np.zeros(3), worker=0)
                pulled = sl.ps.pull(w, worker=0, staleness=0, workers=2)
            with sl.device("/job:worker/task:1"):
                grad = pulled * 2.0
            with sl.device("/job:worker/task:0"):
                theirs = sl.ps.push(w, grad, worker=1)
            init = sl.global_variables_initializer()
        config = sl.ConfigProto(step_timeout_seconds=5)
        with sl.Session(cluster.target, graph=g, config=config) as sess:
            sess.run(init)
            sess.run(mine)  # Worker 0 is a push ahead: its next pull waits for worker 1's.
            result = {}

            def run():
                try:
                    sess.run(theirs)
                except sl.errors.OpError as e:
                    result["error"] = e
            step = threading.Thread(target=run)
            step.start()
            deadline = time.monotonic() + 30
            while True:  # Until both waits are in place.
                report = sl.debug.inspect(cluster.target)
                if report.cycles or time.monotonic() > deadline:
                    break
                time.sleep(0.01)  # Polling a condition, bounded by the deadline.
            text = str(report)
            assert report.cycles == [["/job:worker/task:0", "/job:worker/task:1"]], text
            assert "ps: worker 0's pull of w waits for pushes from worker(s) 1" in text
            assert ("/job:worker/task:0 -> /job:worker/task:1 (step None, pull of w): waits for "
                    "its push (bounded staleness, on /job:worker/task:0)") in text
            assert "/job:worker/task:1 -> /job:worker/task:0 (step " in text
            assert "CYCLE: /job:worker/task:0 -> /job:worker/task:1 -> /job:worker/task:0" in text
            step.join(timeout=60)
            assert not step.is_alive() and "error" in result  # Its deadline ended it.
