#!/usr/bin/env python3
"""Data-parallel training throughput: BSP (sl.train.BSPStrategy, all-reduce form) of one MLP on
1, 2 and 4 workers of a LocalCluster, in examples per second, with the scaling efficiency and
where a step's time goes.

Each worker trains on a batch of `--batch` synthetic examples generated on the worker itself
(so the client link carries nothing but the step: the figure is the training system's, not the
input pipeline's). Per worker count the script times three fetches of the same graph, medians
of `--repetitions` runs of `--steps` steps each:

  step      one BSP training step (forward, backward, bucketed all-reduce, update)
  compute   the replicas' forward and backward only (their gradients, summed to a scalar on
            each worker so nothing large leaves it): no all-reduce, no update
  overhead  a trivial step touching every worker (the master's RunStep and one RunGraph per
            worker)

and reports examples/s = workers x batch / step, the efficiency against one worker (throughput_n
/ (n x throughput_1); when 1 is among --workers), and the step split into compute, overhead and
the rest (the all-reduce and the update).

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/bsp_throughput.py --workers 1 2 4
"""

import argparse
import statistics
import time

import numpy as np

from bench_util import load_average


def build(sl, n, batch, layers, bucket_bytes):
    devices = ["/job:worker/task:%d" % i for i in range(n)]
    g = sl.Graph()
    with g.as_default():
        inputs = []
        for i, d in enumerate(devices):
            with sl.device(d):
                x = sl.random_uniform([batch, layers[0]], seed=i + 1)
                y = sl.cast(sl.random_uniform([batch], maxval=layers[-1], seed=i + 101),
                            sl.int64)
            inputs.append((x, y))

        def model(x, y):
            h = x
            for k, (fan_in, fan_out) in enumerate(zip(layers[:-1], layers[1:])):
                w = sl.get_variable("w%d" % k, [fan_in, fan_out],
                                    initializer=sl.glorot_uniform_initializer(seed=k))
                b = sl.get_variable("b%d" % k, [fan_out], initializer=sl.zeros_initializer())
                h = sl.matmul(h, w) + b
                if k < len(layers) - 2:
                    h = sl.nn.relu(h)
            return sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=h))

        bsp = sl.train.BSPStrategy(devices, bucket_bytes=bucket_bytes)
        train_op, loss = bsp.minimize(sl.train.GradientDescentOptimizer(0.01), model, inputs)
        # The replicas' forward and backward alone, reduced to one scalar per worker.
        computes, touches = [], []
        for i, d in enumerate(devices):
            with sl.device(d):
                grads = sl.gradients(bsp.replica_losses[i], bsp.replica_variables[i])
                computes.append(sl.add_n([sl.reduce_sum(gr) for gr in grads]))
                touches.append(sl.constant(1.0) + 0.0)
        compute = sl.group(*computes)
        overhead = sl.group(*touches)
        init = sl.global_variables_initializer()
    return g, init, {"step": train_op, "compute": compute, "overhead": overhead}, loss


def time_fetch(sess, fetch, steps):
    start = time.perf_counter()
    for _ in range(steps):
        sess.run(fetch)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", type=int, nargs="+", default=[784, 1024, 1024, 10])
    parser.add_argument("--bucket_bytes", type=int, default=4 << 20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    import sluice as sl

    params = sum(a * b + b for a, b in zip(args.layers[:-1], args.layers[1:]))
    print("model {} ({:.1f} MB of float32 parameters), batch {} per worker, buckets of {} "
          "bytes".format("-".join(map(str, args.layers)), params * 4 / 1e6, args.batch,
                         args.bucket_bytes))
    print("load average before: " + load_average())
    print("| workers | step ms | examples/s | efficiency | compute ms | overhead ms | "
          "all-reduce + update ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = None
    for n in args.workers:
        with sl.LocalCluster(workers=n) as cluster:
            g, init, fetches, loss = build(sl, n, args.batch, args.layers, args.bucket_bytes)
            with sl.Session(cluster.target, graph=g) as sess:
                sess.run(init)
                first = sess.run(loss)
                for f in fetches.values():  # Warm up every fetch.
                    sess.run(f)
                times = {k: [] for k in fetches}
                for _ in range(args.repetitions):  # Interleaved, so load hits all alike.
                    for k, f in fetches.items():
                        times[k].append(time_fetch(sess, f, args.steps))
                last = sess.run(loss)
        t = {k: statistics.median(v) for k, v in times.items()}
        throughput = n * args.batch / t["step"]
        if n == 1:
            base = throughput
        print("| {} | {:.2f} | {:.0f} | {} | {:.2f} | {:.2f} | {:.2f} |".format(
            n, t["step"] * 1e3, throughput,
            "{:.2f}".format(throughput / (n * base)) if base else "-", t["compute"] * 1e3,
            t["overhead"] * 1e3, max(0.0, t["step"] - t["compute"]) * 1e3), flush=True)
        if not (np.isfinite(first) and np.isfinite(last)):
            raise SystemExit("the loss is not finite ({} -> {})".format(first, last))
    print("load average after: " + load_average())


if __name__ == "__main__":
    main()
