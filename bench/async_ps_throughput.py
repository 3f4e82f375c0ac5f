#!/usr/bin/env python3
"""Asynchronous training throughput against one parameter server: steps/s of 1, 2 and 4
workers pushing to one ps task, and the delay histogram of each run.

Model: the 784-256-10 MLP (0.8 MB of float32 parameters) on the ps task, ASGD (sl.ps pull and
push of each of its four variables). Each worker is a thread with its own graph and session on
a LocalCluster of n workers + 1 ps (between-graph replication); one step pulls the four
variables to the worker, computes the loss of a batch of 64 synthetic examples generated on the
worker (so the client link carries only the step) and its gradients, and pushes them. Workers
never wait for each other: the ps applies pushes as they come, and each push's delay is the
number of other workers' pushes between its pull and it (sl.ps.delays). Per worker count:
a warm-up, then every worker steps for --seconds; steps/s are all workers' steps together.

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/async_ps_throughput.py --workers 1 2 4
"""

import argparse
import json
import threading
import time

import numpy as np

import sluice as sl
from bench_util import load_average

LAYERS = [784, 256, 10]
BATCH = 64


def build(m, graph_of_ps):
    """Worker m's graph: the model's variables on /job:ps/task:0 (the same names in every
    graph), its step (pull, loss, gradients, push) and, for the first, the delay histogram."""
    g = sl.Graph()
    with g.as_default():
        sl.ps.declare("*", "asgd", learning_rate=0.05)
        params = []
        with sl.device("/job:ps/task:0"):
            for i, (fan_in, fan_out) in enumerate(zip(LAYERS, LAYERS[1:])):
                rng = np.random.default_rng(i)
                params.append(sl.Variable(rng.normal(0, fan_in ** -0.5, (fan_in, fan_out))
                                          .astype(np.float32), name="w%d" % i))
                params.append(sl.Variable(np.zeros(fan_out, np.float32), name="b%d" % i))
        pulled = [sl.ps.pull(p, worker=m) for p in params]
        with sl.device("/job:worker/task:%d" % m):
            x = sl.random_normal([BATCH, LAYERS[0]], seed=m + 1)
            labels = sl.cast(sl.floor(sl.random_uniform([BATCH], 0, LAYERS[-1], seed=m + 7)),
                             sl.int32)
            h = x
            for i in range(0, len(pulled), 2):
                h = sl.matmul(h, pulled[i]) + pulled[i + 1]
                if i + 2 < len(pulled):
                    h = sl.nn.relu(h)
            loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=h))
            grads = sl.gradients(loss, pulled)
        step = sl.group(*[sl.ps.push(p, gr, worker=m) for p, gr in zip(params, grads)])
        init = sl.global_variables_initializer() if graph_of_ps else None
        delays = sl.ps.delays(params[0])
    return dict(graph=g, step=step, init=init, delays=delays, loss=loss)


def run(n, seconds, warmup):
    with sl.LocalCluster(workers=n, ps=1) as cluster:
        workers = [build(m, m == 0) for m in range(n)]
        sessions = [sl.Session(cluster.target, graph=w["graph"]) for w in workers]
        sessions[0].run(workers[0]["init"])
        for sess, w in zip(sessions, workers):
            for _ in range(warmup):
                sess.run(w["step"])
        before = sessions[0].run(workers[0]["delays"])
        counts = [0] * n
        start = threading.Barrier(n + 1)
        stop_at = [0.0]

        def loop(i):
            start.wait()
            while time.perf_counter() < stop_at[0]:
                sessions[i].run(workers[i]["step"])
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        stop_at[0] = time.perf_counter() + seconds
        began = time.perf_counter()
        start.wait()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        after = sessions[0].run(workers[0]["delays"])
        for s in sessions:
            s.close()
    histogram = np.zeros(max(len(before), len(after)), np.int64)
    histogram[:len(after)] += after
    histogram[:len(before)] -= before
    taus = np.arange(len(histogram))
    mean_delay = float((taus * histogram).sum() / max(histogram.sum(), 1))
    return dict(workers=n, steps=sum(counts), seconds=elapsed,
                steps_per_second=sum(counts) / elapsed,
                per_worker=[c / elapsed for c in counts], mean_delay=mean_delay,
                histogram=histogram.tolist())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    print("load average before: {}".format(load_average()), flush=True)
    results = [run(n, args.seconds, args.warmup) for n in args.workers]
    base = results[0]["steps_per_second"] / results[0]["workers"]
    print("| workers | steps/s | per worker | scaling | mean delay | delays (0, 1, 2, ...) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print("| {} | {:.1f} | {} | {:.2f} | {:.2f} | {} |".format(
            r["workers"], r["steps_per_second"],
            " ".join("{:.1f}".format(p) for p in r["per_worker"]),
            r["steps_per_second"] / (base * r["workers"]), r["mean_delay"], r["histogram"]))
    print("load average after: {}".format(load_average()), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
