"""Helpers for tests that kill a worker in the middle of a step and bring it back."""

import os
import threading
import time

import sluice as sl


def cpu_seconds(pid):
    """The CPU time (user + system) process `pid` has used, in seconds."""
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_mid_step(cluster, worker, run, cpu=0.2, timeout=30):
    """Runs `run()` (a step) on a thread; once worker `worker` of the LocalCluster has used
    `cpu` more seconds of CPU (it computes inside the step), kills it with SIGKILL and waits for
    the thread. Returns (the OpError `run` raised, or None; seconds from the kill to the end of
    `run`)."""
    pid = cluster._cluster.worker_pid(worker)
    before = cpu_seconds(pid)
    result = {}

    def step():
        try:
            run()
        except sl.errors.OpError as e:
            result["error"] = e
        result["end"] = time.monotonic()

    runner = threading.Thread(target=step)
    runner.start()
    deadline = time.monotonic() + timeout
    while cpu_seconds(pid) - before < cpu:  # Mid-step: the worker computes.
        assert time.monotonic() < deadline, "worker {} never started computing".format(worker)
        time.sleep(0.01)  # Polling a condition, bounded by the deadline.
    killed_at = time.monotonic()
    cluster.kill_worker(worker)
    runner.join()
    return result.get("error"), result["end"] - killed_at


def until_rejoined(run, timeout=30):
    """`run()`, retried while the master has not yet registered the partitions on a restarted
    worker (Unavailable, NotFound) for up to `timeout` seconds; its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return run()
        except (sl.errors.UnavailableError, sl.errors.NotFoundError):
            if time.monotonic() > deadline:
                raise
