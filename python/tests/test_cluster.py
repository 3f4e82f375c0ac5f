"""Distributed runs from Python: sl.LocalCluster (real sluice_server processes on loopback),
sl.Server (tasks in this process) and sl.Session("grpc://...")."""

import os
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import sluice as sl

from cluster_faults import kill_mid_step, until_rejoined
from two_worker_model import build_two_worker_model


def batch(step):
    rng = np.random.default_rng(step)
    return rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 3, size=5)


def train_steps(sess, m, steps):
    """Runs init and `steps` training steps; returns (losses, gradients of the last step,
    final w1, final w2)."""
    sess.run(m["init"])
    losses = []
    grads = None
    for step in range(steps):
        xs, ys = batch(step)
        grads, _, loss = sess.run([m["grads"], m["train"], m["loss"]],
                                  feed_dict={m["x"]: xs, m["y"]: ys})
        losses.append(loss)
    return losses, grads, sess.run(m["w1"]), sess.run(m["w2"])


@pytest.fixture(scope="module")
def cluster():
    with sl.LocalCluster(workers=2) as c:
        yield c


def test_local_cluster_training_equals_in_process_training(cluster):
    g, m = build_two_worker_model(sl.train.MomentumOptimizer(0.1, momentum=0.9))
    with sl.Session(graph=g) as local:
        expected = train_steps(local, m, 8)
    with sl.Session(cluster.target, graph=g) as remote:
        got = train_steps(remote, m, 8)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    for got_grad, want_grad in zip(got[1], expected[1]):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-6, atol=1e-7)
    assert got[0][-1] < got[0][0]


def test_the_issue_example_runs_on_a_local_cluster(cluster):
    g, m = build_two_worker_model()
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(m["init"])
        _, loss = sess.run([m["train"], m["loss"]],
                           feed_dict={m["x"]: np.ones((2, 4), np.float32),
                                      m["y"]: np.array([0, 2])})
    assert np.isfinite(loss) and loss.dtype == np.float32


def test_remote_session_lists_the_workers_devices(cluster):
    g, _ = build_two_worker_model()
    with sl.Session(cluster.target, graph=g) as sess:
        devices = sess.list_devices()
    assert any(d.startswith("/job:worker/task:0/") for d in devices), devices
    assert any(d.startswith("/job:worker/task:1/") for d in devices), devices


def test_remote_fetches_have_numpy_dtypes_and_structures(cluster):
    g = sl.Graph()
    with g.as_default():
        a = sl.placeholder(sl.int32, shape=[3], name="a")
        with sl.device("/job:worker/task:1"):
            b = a * 2
        c = sl.cast(b, sl.float64)
    with sl.Session(cluster.target, graph=g) as sess:
        out = sess.run({"b": b, "pair": (b, c)}, feed_dict={a: [1, 2, 3]})
    assert out["b"].dtype == np.int32 and out["b"].tolist() == [2, 4, 6]
    assert out["pair"][1].dtype == np.float64 and out["pair"][1].tolist() == [2.0, 4.0, 6.0]


def test_feeds_and_fetches_larger_than_grpc_default_message_cap(cluster):
    # 8 MiB each way: twice gRPC's default 4 MiB message cap, which feeds once ran into.
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None], name="x")
        with sl.device("/job:worker/task:1"):
            y = x * 2.0
    values = np.arange(2 << 20, dtype=np.float32)
    with sl.Session(cluster.target, graph=g) as sess:
        out = sess.run(y, feed_dict={x: values})
    np.testing.assert_array_equal(out, values * 2.0)


def test_remote_run_errors_are_python_exceptions_naming_the_node(cluster):
    g = sl.Graph()
    with g.as_default():
        a = sl.placeholder(sl.float32, shape=[None, None], name="a")
        with sl.device("/job:worker/task:1"):
            prod = sl.matmul(a, a, name="square")
    with sl.Session(cluster.target, graph=g) as sess:
        with pytest.raises(sl.errors.InvalidArgumentError) as e:
            sess.run(prod, feed_dict={a: np.ones((2, 3), np.float32)})
        assert e.value.node_name == "square"
        assert "[2,3]" in str(e.value)
        # A feed of another dtype converts (as in TensorFlow); one that cannot is refused
        # before the step, naming the placeholder.
        np.testing.assert_array_equal(sess.run(prod, feed_dict={a: np.ones((2, 2), np.int32)}),
                                      np.full((2, 2), 2.0))
        with pytest.raises(TypeError, match=r"feed for 'a:0' \(float32\): cannot convert"):
            sess.run(prod, feed_dict={a: [["x", "y"]]})
        # The session stays usable.
        np.testing.assert_array_equal(sess.run(prod, feed_dict={a: np.eye(2, dtype=np.float32)}),
                                      np.eye(2))


def test_uninitialized_variable_on_a_worker_is_a_failed_precondition(cluster):
    # Variables live on the workers and are shared by name across the cluster's sessions (as
    # in TensorFlow 1), so this one has a name no other test uses.
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:1"):
            v = sl.Variable(sl.zeros([2]), name="never_initialized")
    with sl.Session(cluster.target, graph=g) as sess:
        with pytest.raises(sl.errors.FailedPreconditionError, match="never_initialized"):
            sess.run(v)


def test_variables_are_shared_by_name_across_sessions_of_a_cluster(cluster):
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            v = sl.Variable([1.0, 2.0], name="shared_counter")
            bump = sl.assign_add(v, [10.0, 10.0])
        init = sl.global_variables_initializer()
    with sl.Session(cluster.target, graph=g) as first:
        first.run(init)
        first.run(bump)
    with sl.Session(cluster.target, graph=g) as second:
        np.testing.assert_array_equal(second.run(v), [11.0, 12.0])


def test_saver_round_trip_between_remote_and_in_process_sessions(cluster, tmp_path):
    g, m = build_two_worker_model()
    with g.as_default():
        saver = sl.train.Saver()
    path = str(tmp_path / "model.ckpt")
    with sl.Session(cluster.target, graph=g) as remote:
        _, _, w1, w2 = train_steps(remote, m, 3)
        assert saver.save(remote, path) == path
    with sl.Session(graph=g) as local:  # The same file restores in process ...
        saver.restore(local, path)
        np.testing.assert_array_equal(local.run(m["w1"]), w1)
        np.testing.assert_array_equal(local.run(m["w2"]), w2)
        local.run(m["train"], feed_dict={m["x"]: batch(9)[0], m["y"]: batch(9)[1]})
        saver.save(local, path)
        w1_local, w2_local = local.run([m["w1"], m["w2"]])
    with sl.Session(cluster.target, graph=g) as remote:  # ... and an in-process save remotely.
        saver.restore(remote, path)
        np.testing.assert_array_equal(remote.run(m["w1"]), w1_local)
        np.testing.assert_array_equal(remote.run(m["w2"]), w2_local)


def test_remote_restore_checks_the_file_before_touching_variables(cluster, tmp_path):
    g, m = build_two_worker_model()
    other = sl.Graph()
    with other.as_default():
        sl.Variable(np.zeros((4, 8), np.float64), name="w1")  # Same name, other dtype.
        only = sl.train.Saver()
        other_init = sl.global_variables_initializer()
    path = str(tmp_path / "other.ckpt")
    with sl.Session(graph=other) as local:
        local.run(other_init)
        only.save(local, path)
    saver = sl.train.Saver([m["w1"]])
    with sl.Session(cluster.target, graph=g) as remote:
        remote.run(m["init"])
        before = remote.run(m["w1"])
        with pytest.raises(sl.errors.InvalidArgumentError, match="float64"):
            saver.restore(remote, path)
        np.testing.assert_array_equal(remote.run(m["w1"]), before)
        with open(path, "r+b") as f:  # Flip a byte: the checksum no longer matches.
            f.seek(20)
            byte = f.read(1)
            f.seek(20)
            f.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(sl.errors.DataLossError):
            saver.restore(remote, path)
        np.testing.assert_array_equal(remote.run(m["w1"]), before)


def test_operations_added_after_a_remote_run_see_the_trained_variables(cluster):
    g, m = build_two_worker_model()
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(m["init"])
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                bump = sl.assign_add(m["w1"], np.ones((4, 8), np.float32))
        before = sess.run(m["w1"])
        sess.run(bump)
        np.testing.assert_allclose(sess.run(m["w1"]), before + 1)


def test_sessions_on_one_cluster_run_concurrently_from_threads(cluster):
    g = sl.Graph()
    with g.as_default():
        a = sl.placeholder(sl.float32, shape=[64, 64], name="a")
        with sl.device("/job:worker/task:0"):
            b = sl.matmul(a, a)
        with sl.device("/job:worker/task:1"):
            c = sl.reduce_sum(b)
    value = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    want = float((value @ value).sum())
    errors = []

    def worker():
        try:
            with sl.Session(cluster.target, graph=g) as sess:
                for _ in range(10):
                    np.testing.assert_allclose(sess.run(c, feed_dict={a: value}), want,
                                               rtol=1e-4)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("make_optimizer", [
    lambda: sl.train.GradientDescentOptimizer(0.1),
    lambda: sl.train.AdamOptimizer(0.05),
])
def test_optimizer_updates_and_slots_live_with_their_variable(cluster, make_optimizer):
    """minimize() under another task's device scope: updates, slots and Adam's beta powers go
    to the variable's task, so the cluster accepts the graph and trains as in process."""
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            w = sl.Variable(np.array([[1.0], [-2.0]], np.float32), name="w")
        with sl.device("/job:worker/task:1"):
            x = sl.placeholder(sl.float32, [None, 2], name="x")
            loss = sl.reduce_mean(sl.square(sl.matmul(x, w) - 1.0))
            opt = make_optimizer()
            train = opt.minimize(loss)
        init = sl.global_variables_initializer()
    for op in g.get_operations():
        if op.type.startswith("Apply") or "beta" in op.name or "Adam_" in op.name:
            assert op.device in ("", "/job:worker/task:0"), (op.name, op.device)
    xs = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], np.float32)
    results = []
    for target in ("", cluster.target):
        with sl.Session(target, graph=g) as sess:
            sess.run(init)
            for _ in range(3):
                sess.run(train, {x: xs})
            results.append(sess.run([w, loss], {x: xs}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    assert results[1][1] < 7.4  # From 89/12 before the three steps.


def test_config_soft_placement_and_device_filters(cluster):
    g = sl.Graph()
    with g.as_default():
        with sl.device("/gpu:0"):
            a = sl.constant([1.0, 2.0]) * 2.0
        with sl.device("/job:worker/task:0"):
            b = a + 1.0
    with pytest.raises(sl.errors.InvalidArgumentError, match="gpu"):
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(b)
    soft = sl.ConfigProto(allow_soft_placement=True)
    with sl.Session(cluster.target, graph=g, config=soft) as sess:
        np.testing.assert_array_equal(sess.run(b), [3.0, 5.0])
    # Only task 1's device: the request for task 0 is relaxed onto it.
    only_1 = sl.ConfigProto(allow_soft_placement=True, device_filters=["/job:worker/task:1"])
    with sl.Session(cluster.target, graph=g, config=only_1) as sess:
        np.testing.assert_array_equal(sess.run(b), [3.0, 5.0])
    none = sl.ConfigProto(device_filters=["/job:ps"])
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"no device of the cluster matches the device filters /job:ps"):
        with sl.Session(cluster.target, graph=g, config=none) as sess:
            sess.run(b)


def test_log_device_placement_in_process(capfd):
    g = sl.Graph()
    with g.as_default():
        c = sl.constant(1.0, name="c")
    with sl.Session(graph=g, config=sl.ConfigProto(log_device_placement=True)) as sess:
        assert sess.run(c) == 1.0
    assert "c: (Const): /job:localhost/task:0/device:cpu:0" in capfd.readouterr().err


def test_bad_targets_are_value_errors():
    with pytest.raises(ValueError, match="grpc://host:port"):
        sl.Session("localhost:5000")
    with pytest.raises(ValueError, match="grpc://host:port"):
        sl.Session("grpc://nohostport")


def test_missing_server_binary_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an executable"):
        sl.LocalCluster(workers=1, server_binary=str(tmp_path / "missing"))


def test_killed_worker_fails_the_step_naming_it_and_a_restart_rejoins():
    with sl.LocalCluster(workers=2) as cluster:
        g, m = build_two_worker_model()
        feed = {m["x"]: batch(0)[0], m["y"]: batch(0)[1]}
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(m["init"])
            cluster.kill_worker(1)
            with pytest.raises(sl.errors.UnavailableError, match="/job:worker/task:1"):
                sess.run(m["loss"], feed_dict=feed)
        cluster.restart_worker(1)
        # The master notices the new incarnation at its next heartbeat; until then a step may
        # still fail with Unavailable. The restarted worker has lost its variables.
        with sl.Session(cluster.target, graph=g) as sess:
            until_rejoined(lambda: sess.run(m["init"]))
            loss = sess.run(m["loss"], feed_dict=feed)
        assert np.isfinite(loss)


def test_a_worker_killed_mid_step_and_restarted_carries_the_next_training_step():
    """Worker 1 is killed while it computes on a matrix worker 0 sent it (worker 0 waits in a
    receive). Worker 0's data stream to it then sat idle through the restart: its first write
    afterwards "succeeded" into the dead connection, the tensor was lost, and the first
    training step (its partitions registered after the restart) hung until its deadline on
    both workers."""
    with sl.LocalCluster(workers=2) as cluster:
        g, m = build_two_worker_model()
        slow_graph = sl.Graph()
        with slow_graph.as_default():
            with sl.device("/job:worker/task:0"):
                seed = sl.random_normal([512, 512], stddev=1.0 / 512, seed=3)
            with sl.device("/job:worker/task:1"):
                heavy = seed
                for _ in range(400):
                    heavy = sl.tanh(sl.matmul(heavy, seed))
                total = sl.reduce_sum(heavy)
            with sl.device("/job:worker/task:0"):
                slow = total + 1.0
        feed = {m["x"]: batch(0)[0], m["y"]: batch(0)[1]}
        config = sl.ConfigProto(step_timeout_seconds=10)
        with sl.Session(cluster.target, graph=g, config=config) as sess, \
                sl.Session(cluster.target, graph=slow_graph, config=config) as slow_sess:
            sess.run(m["init"])
            slow_sess.run(slow)
            error, _ = kill_mid_step(cluster, 1, lambda: slow_sess.run(slow))
            assert isinstance(error, sl.errors.UnavailableError), error
            cluster.restart_worker(1)
            until_rejoined(lambda: sess.run(m["init"]))
            start = time.monotonic()
            sess.run(m["train"], feed_dict=feed)
            assert time.monotonic() - start < 5


def test_servers_in_this_process_form_a_cluster():
    # Workers on OS-chosen ports, then a master that is told where they are.
    workers = [sl.Server(None, "worker", task, port=0) for task in range(2)]
    spec = {"worker": [w.target[len("grpc://"):] for w in workers]}
    master = sl.Server(spec, job_name="master", port=0)
    try:
        g = sl.Graph()
        with g.as_default():
            a = sl.placeholder(sl.float32, shape=[2], name="a")
            with sl.device("/job:worker/task:0"):
                b = a + 1
            with sl.device("/job:worker/task:1"):
                c = b * 3
        with sl.Session(master.target, graph=g) as sess:
            np.testing.assert_array_equal(sess.run(c, feed_dict={a: [1, 2]}), [6, 9])
    finally:
        master.stop()
        for w in workers:
            w.stop()


def test_in_process_servers_stopped_at_once_never_abort():
    """A server stopped right after it started, before the thread that serves its queue got
    going, must not request calls on the queue it shut down: gRPC answers that by aborting the
    whole process (this test process died of it about once in ten runs, in test_deploy; about
    one in 600 such servers did, on a busy machine)."""
    for _ in range(300):
        sl.Server(None, "worker", 0, port=0).stop()


def _consecutive_free_ports(n):
    """n consecutive loopback ports free right now (the spec form users write by hand)."""
    import socket

    for _ in range(50):
        held = []
        try:
            first = socket.socket()
            first.bind(("127.0.0.1", 0))
            held.append(first)
            base = first.getsockname()[1]
            for k in range(1, n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + k))
            return [base + k for k in range(n)]
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no {} consecutive free ports".format(n))


def test_every_task_serves_sessions_and_waits_for_tasks_started_later(capfd):
    """TF1's cluster semantics: one address per task (consecutive ports), a session on a
    worker task, and a step that waits, saying so, for the tasks not started yet."""
    ports = _consecutive_free_ports(3)
    spec = sl.train.ClusterSpec({"ps": ["127.0.0.1:%d" % ports[0]],
                                 "worker": ["127.0.0.1:%d" % p for p in ports[1:]]})
    assert spec.num_tasks("worker") == 2 and spec.task_address("ps", 0).endswith(str(ports[0]))
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:ps/task:0"):
            w = sl.Variable(np.array([1.0, 2.0], np.float32), name="w")
        x = sl.placeholder(sl.float32, [2], name="x")
        with sl.device("/job:worker/task:1"):
            y = w * x
        with sl.device("/job:worker/task:0"):
            z = y + 1.0
        init = sl.global_variables_initializer()
    servers = [sl.train.Server(spec, job_name="worker", task_index=0)]
    result = {}

    def run():
        try:
            with sl.Session(servers[0].target, graph=g) as sess:
                sess.run(init)
                result["z"] = sess.run(z, {x: [3.0, 4.0]})
        except Exception as e:  # noqa: BLE001  (reported by the test below)
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    seen, deadline = "", time.monotonic() + 60
    while "waiting for /job:ps/task:0" not in seen and time.monotonic() < deadline:
        seen += capfd.readouterr().err
        time.sleep(0.02)  # Polling the log for the master's line, not ordering events.
    # The first step (the initializer) needs the ps task only.
    assert "waiting for /job:ps/task:0 at 127.0.0.1:%d" % ports[0] in seen
    servers.append(sl.train.Server(spec, job_name="ps", task_index=0))
    servers.append(sl.train.Server(spec, job_name="worker", task_index=1))
    try:
        thread.join(120)
        assert "error" not in result, result.get("error")
        np.testing.assert_array_equal(result["z"], [4.0, 9.0])
        # Another task serves sessions too, over the same variables (kept by the ps task).
        with sl.Session(servers[2].target, graph=g) as sess:
            np.testing.assert_array_equal(sess.run(z, {x: [1.0, 1.0]}), [2.0, 3.0])
        data_ports = {int(s.data_address.rsplit(":", 1)[1]) for s in servers}
        assert not data_ports & set(ports)  # The OS chose them: no neighbour's port taken.
    finally:
        for s in servers:
            s.stop()


def test_a_step_names_the_tasks_that_never_started():
    port = _consecutive_free_ports(2)
    spec = {"worker": ["127.0.0.1:%d" % port[0], "127.0.0.1:%d" % port[1]]}
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:1"):
            c = sl.constant(1.0) + 1.0
    with sl.Server(spec, job_name="master", port=0, wait_for_tasks_ms=300) as master:
        with sl.Session(master.target, graph=g) as sess:
            with pytest.raises(sl.errors.UnavailableError,
                               match=r"never answered: /job:worker/task:1 at 127.0.0.1:%d"
                                     % port[1]):
                sess.run(c)


def test_a_session_on_a_task_without_sessions_says_why():
    with sl.Server(None, "worker", 0, port=0) as lone:
        with pytest.raises(sl.errors.OpError, match="no message from the peer|Master"):
            with sl.Session(lone.target) as sess:
                sess.run(sl.constant(1.0))


def test_server_without_its_task_in_the_spec_is_an_error():
    with pytest.raises(sl.errors.OpError, match="worker"):
        sl.Server({"worker": ["127.0.0.1:0"]}, "worker", 3)


def test_servers_exit_when_the_launching_process_is_killed():
    code = ("import os, sluice as sl\n"
            "c = sl.LocalCluster(workers=2)\n"
            "print(c._cluster.master_pid, c._cluster.worker_pid(0), c._cluster.worker_pid(1),\n"
            "      flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    launcher = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(os.environ), timeout=60)
    assert launcher.returncode == -9, launcher.stderr
    for pid in [int(p) for p in launcher.stdout.split()]:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # Already gone.
        try:  # A pidfd becomes readable when its process exits.
            readable, _, _ = select.select([fd], [], [], 30)
            assert readable, "server {} outlived its launcher".format(pid)
        finally:
            os.close(fd)


def test_local_cluster_reports_each_tasks_cpu_time():
    with sl.LocalCluster(workers=1) as cluster:
        before = cluster.cpu_seconds("worker", 0)
        assert before >= 0 and cluster.cpu_seconds("master") >= 0
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                x = sl.random_normal([256, 256], seed=1)
                for _ in range(20):
                    x = sl.tanh(sl.matmul(x, x))
                total = sl.reduce_sum(x)
        with sl.Session(cluster.target, graph=g) as sess:
            for _ in range(30):  # 600 GEMMs of 256: tens of milliseconds of the worker's CPU.
                sess.run(total)
        assert cluster.cpu_seconds("worker", 0) - before >= 0.02
        with pytest.raises(ValueError, match="jobs 'master', 'worker' and 'ps', not 'chief'"):
            cluster.cpu_seconds("chief")


def test_a_cluster_spec_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"cluster spec: expected a dict \{job: \[addresses\]\} "
                                        r"or a string, got 42"):
        sl.Server(42, "worker", 0, port=0, start=False)
