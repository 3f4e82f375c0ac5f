"""A TensorFlow 1 style between-graph replicated trainer: one parameter server, two workers.

This is TF1's "Distributed TensorFlow" template with only the import changed: every process
builds its own graph, the variables live on the ps task, each worker trains asynchronously on
its own shard of the data through a session on its own server, and worker 0 (the chief)
initialises the variables. The model is a linear regression on generated data.

One process per task, as on a real cluster:
    python3 examples/tf1_ps_trainer.py --ps_hosts=h0:2222 --worker_hosts=h1:2222,h2:2222 \\
        --job_name=worker --task_index=0
Or all three on this machine (consecutive loopback ports), as the test suite runs it:
    python3 examples/tf1_ps_trainer.py --local --steps 200
"""

import argparse
import os
import socket
import subprocess
import sys
import time

import numpy as np

import sluice as tf  # The only line that differs from the TensorFlow 1 program.

FEATURES = 8
TRUE_W = np.linspace(-1.0, 1.0, FEATURES).astype(np.float32)
TRUE_B = 0.5


def shard(task_index, n=512):
    """This worker's examples: its own draw of the same linear relation."""
    rng = np.random.default_rng(100 + task_index)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = (x @ TRUE_W + TRUE_B + rng.normal(0, 0.01, size=n)).astype(np.float32)
    return x, y[:, None]


def run_worker(server, cluster, task_index, steps):
    is_chief = task_index == 0
    # Variables on the ps task(s), everything else on this worker; the optimizer's updates run
    # where their variables live.
    with tf.device(tf.train.replica_device_setter(
            worker_device="/job:worker/task:%d" % task_index, cluster=cluster)):
        w = tf.Variable(tf.zeros([FEATURES, 1]), name="w")
        b = tf.Variable(tf.zeros([1]), name="b")
        global_step = tf.train.get_or_create_global_step()
        x = tf.placeholder(tf.float32, [None, FEATURES], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=global_step)
    init = tf.global_variables_initializer()
    xs, ys = shard(task_index)
    with tf.Session(server.target) as sess:
        if is_chief:
            sess.run(init)
        else:
            while True:  # The chief initialises the shared variables.
                try:
                    sess.run(global_step)
                    break
                except tf.errors.FailedPreconditionError:
                    time.sleep(0.05)
        for i in range(steps):
            batch = np.random.default_rng(i * 10 + task_index).integers(0, len(xs), 32)
            _, l = sess.run([train_op, loss], {x: xs[batch], y: ys[batch]})
            if i % 50 == 0:
                print("worker %d step %4d  loss %.5f" % (task_index, i, l), flush=True)
        final = sess.run(loss, {x: xs, y: ys})
        print("worker %d done: global step %d, loss %.6f" % (task_index, sess.run(global_step),
                                                             final), flush=True)


def free_consecutive_ports(n):
    for _ in range(50):
        held = []
        try:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
            for k in range(1, n):
                t = socket.socket()
                held.append(t)
                t.bind(("127.0.0.1", base + k))
            return [base + k for k in range(n)]
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free ports")


def run_local(steps):
    """Starts the ps and both workers as processes of their own; returns when the workers are
    done (the ps is then stopped)."""
    ports = free_consecutive_ports(3)
    hosts = ["127.0.0.1:%d" % p for p in ports]
    common = [sys.executable, os.path.abspath(__file__), "--ps_hosts=" + hosts[0],
              "--worker_hosts=" + ",".join(hosts[1:]), "--steps=%d" % steps]
    ps = subprocess.Popen(common + ["--job_name=ps", "--task_index=0"])
    workers = [subprocess.Popen(common + ["--job_name=worker", "--task_index=%d" % i])
               for i in range(2)]
    try:
        codes = [wk.wait(timeout=600) for wk in workers]
    finally:
        for p in workers + [ps]:
            if p.poll() is None:
                p.terminate()
                p.wait()
    if any(codes):
        sys.exit("a worker failed: exit codes %s" % codes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps_hosts", default="")
    parser.add_argument("--worker_hosts", default="")
    parser.add_argument("--job_name", default="")
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--local", action="store_true",
                        help="start the ps and two workers on this machine")
    args = parser.parse_args()
    if args.local:
        run_local(args.steps)
        return
    cluster = tf.train.ClusterSpec({"ps": args.ps_hosts.split(","),
                                    "worker": args.worker_hosts.split(",")})
    server = tf.train.Server(cluster, job_name=args.job_name, task_index=args.task_index)
    if args.job_name == "ps":
        server.join()
    else:
        run_worker(server, cluster, args.task_index, args.steps)


if __name__ == "__main__":
    main()
