"""sluice_server --metrics_port: each task's metrics in Prometheus' text format over HTTP,
scraped with a real HTTP client (urllib) from real server processes after real steps: steps
by result, step latency, bytes per plane and peer (a 1 MiB tensor from worker 0 to worker 1
counted on both ends), the mailbox's bytes, the master's heartbeat round trips."""

import re
import urllib.error
import urllib.request

import numpy as np
import pytest

import sluice as sl


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def sample(text, name, **labels):
    """The value of metric `name` with exactly these labels (0 when absent)."""
    want = ",".join('{}="{}"'.format(k, v) for k, v in labels.items())
    pattern = re.escape(name) + (re.escape("{" + want + "}") if labels else "") + r" (\S+)\n"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_steps_latency_and_bytes_per_plane_and_peer():
    n = 262144  # 1 MiB of float32 crosses from worker 0 to worker 1 each step.
    with sl.LocalCluster(workers=2, worker_flags=["--metrics_port=0"],
                         master_flags=["--metrics_port=0"]) as cluster:
        urls = [cluster.metrics_url("worker", i) for i in range(2)]
        assert all(u and u.startswith("http://127.0.0.1:") for u in urls)
        master = cluster.metrics_url("master")
        before = [scrape(u) for u in urls]
        assert sample(before[0], "sluice_steps_total", result="ok") == 0
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                x = sl.placeholder(sl.float32, [n])
                y = x * 2.0
            with sl.device("/job:worker/task:1"):
                z = sl.reduce_sum(y + 1.0)
                v = sl.Variable(np.zeros(1, np.float32), name="never_initialized")
                bad = v + 1.0  # Fails on worker 1 alone.
        with sl.Session(cluster.target, graph=g) as sess:
            for _ in range(3):
                assert sess.run(z, {x: np.ones(n, np.float32)}) == pytest.approx(3.0 * n)
            with pytest.raises(sl.errors.FailedPreconditionError):
                sess.run(bad)
        after = [scrape(u) for u in urls]
        # The master's heartbeats to each worker: a step waits for a first answer of each.
        heartbeats = scrape(master)
    for i in range(2):
        assert sample(heartbeats, "sluice_heartbeat_seconds_count",
                      peer="/job:worker/task:{}".format(i)) >= 1
    sent = sample(after[0], "sluice_bytes_sent_total", plane="data", peer="/job:worker/task:1")
    received = sample(after[1], "sluice_bytes_received_total", plane="data",
                      peer="/job:worker/task:0")
    # Three steps carried the tensor: each 1 MiB of payload plus the chunk headers.
    assert 3 * 4 * n <= sent < 3 * (4 * n + 16384), sent
    assert received == sent
    for i, text in enumerate(after):
        assert sample(text, "sluice_steps_total", result="ok") == 3
        assert sample(text, "sluice_step_seconds_count") == 3 + i
        assert sample(text, "sluice_step_seconds_bucket", le="+Inf") == 3 + i
        assert sample(text, "sluice_step_seconds_sum") > 0
        assert sample(text, "sluice_bytes_received_total", plane="control", peer="master") > 0
        assert "# TYPE sluice_mailbox_buffered_bytes gauge\nsluice_mailbox_buffered_bytes 0\n" \
            in text
        assert "# TYPE sluice_credit_waits_total counter\n" in text
    assert sample(after[1], "sluice_steps_total", result="failed") == 1
    # The feed went to worker 0 in its RunGraph request: 1 MiB on its control plane each step.
    assert sample(after[0], "sluice_bytes_received_total", plane="control",
                  peer="master") > 3 * 4 * n


def test_other_paths_are_not_found_and_a_port_in_use_is_refused():
    with sl.LocalCluster(workers=1, worker_flags=["--metrics_port=0"]) as cluster:
        assert cluster.metrics_url("master") is None
        url = cluster.metrics_url("worker", 0)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
        assert e.value.code == 404
        port = int(url.split(":")[2].split("/")[0])
        with pytest.raises(sl.errors.UnavailableError,
                           match="cannot listen for metrics on 127.0.0.1:{}".format(port)):
            with sl.LocalCluster(workers=1, worker_flags=["--metrics_port={}".format(port)]):
                pass


def test_a_ps_task_exposes_its_variables_figures():
    with sl.LocalCluster(workers=1, ps=1, worker_flags=["--metrics_port=0"]) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:ps/task:0"):
                w = sl.Variable(np.zeros((4, 2)), name="w")
            pulled = sl.ps.pull(w, worker=0, rule="dc_asgd")
            with sl.device("/job:worker/task:0"):
                grad = pulled + 1.0
            push = sl.ps.push(w, grad, worker=0, rule="dc_asgd", learning_rate=0.1, lam=0.5)
            init = sl.global_variables_initializer()
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(init)
            for _ in range(3):
                sess.run(push)
        text = scrape(cluster.metrics_url("ps", 0))
    assert sample(text, "sluice_ps_pushes_total", variable="w") == 3
    assert sample(text, "sluice_ps_backup_bytes", variable="w") == 4 * 2 * 8  # Worker 0's.
    assert sample(text, "sluice_ps_waiting_pulls", variable="w") == 0
    assert "# TYPE sluice_ps_dropped_total counter" in text
