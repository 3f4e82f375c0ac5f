"""Helpers for tests that kill a worker in the middle of a step and bring it back."""

import threading
import time

import sluice as sl


def kill_mid_step(cluster, worker, run, cpu=0.2, timeout=30):
    """Runs `run()` (a step) on a thread; once worker `worker` of the LocalCluster has used
    `cpu` more seconds of CPU (it computes inside the step), kills it with SIGKILL and waits for
    the thread. Returns (the OpError `run` raised, or None; seconds from the kill to the end of
    `run`)."""
    before = cluster.cpu_seconds("worker", worker)
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
    while cluster.cpu_seconds("worker", worker) - before < cpu:  # Mid-step: the worker computes.
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
