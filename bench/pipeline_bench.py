#!/usr/bin/env python3
"""Pipeline efficiency on a LocalCluster, against the ideal makespan of the design's target
(>= 0.9x ideal throughput at p = 4 workers, m = 16 micro-batches).

Timed stages: each stage is an op of known duration (sl.debug.sleep: t per micro-batch forward,
2t backward; the thread sleeps, so a 2-core machine does not limit it). GPipe and 1F1B on p
workers against the ideal (m + p - 1) 3t; interleaved 1F1B (v = 2 stages of t/2 per worker)
against (m + (p - 1) / v) 3t. Efficiency = ideal / measured step (median of `--steps`, after
two warm-up steps), with each worker's measured bubble beside the verifier's prediction.

A real MLP: p stages of `--layers` tanh(x W) layers of width `--width`, 64 rows per
micro-batch generated on worker 0, pipelined (1F1B, m = 16) against the same model run
model-parallel without micro-batches (m = 1), on 2 and 4 workers: rows/s and the speed-up.

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/pipeline_bench.py --workers 4 --micro-batches 16
"""

import argparse
import statistics
import time

import numpy as np

from bench_util import load_average


def build(sl, stages, workers, m, rows, stage_fn, schedule, per_worker):
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            x = sl.random_uniform([m * rows, stage_fn.width], seed=1)
        h = x
        for s in range(stages):
            with sl.pipeline.stage(s, "/job:worker/task:%d" % (s % workers)):
                h = stage_fn(sl, s, h)
                if s == stages - 1:
                    loss = sl.reduce_mean(sl.square(h))
        pipe = sl.pipeline.Pipeline(m, schedule=schedule, inputs=[x],
                                    stages_per_worker=per_worker)
        train = sl.train.GradientDescentOptimizer(0.01).minimize(loss, pipeline=pipe)
        init = sl.global_variables_initializer()
    return g, train, init, pipe


def run(sl, cluster, steps, *build_args):
    g, train, init, pipe = build(sl, *build_args)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for _ in range(2):
            sess.run([train, pipe.timing])
        times, bubbles = [], []
        for _ in range(steps):
            start = time.perf_counter()
            _, timing = sess.run([train, pipe.timing])
            times.append(time.perf_counter() - start)
            bubbles.append(pipe.measure(timing).bubbles)
    workers = len(bubbles[0])
    return (statistics.median(times),
            [statistics.median(b[w] for b in bubbles) for w in range(workers)],
            pipe.report.bubbles)


class Timed:
    """A stage of known duration: sleep t forward (t / v per stage when interleaved)."""
    width = 4

    def __init__(self, micros):
        self.micros = micros

    def __call__(self, sl, s, h):
        w = sl.Variable(np.ones([self.width], np.float32), name="w%d" % s)
        return sl.debug.sleep(h * w, self.micros, 2 * self.micros)


class Mlp:
    def __init__(self, width, layers):
        self.width, self.layers = width, layers

    def __call__(self, sl, s, h):
        for k in range(self.layers):
            w = sl.Variable(np.eye(self.width, dtype=np.float32) * 0.9, name="w%d_%d" % (s, k))
            h = sl.tanh(sl.matmul(h, w))
        return h


def fmt(values):
    return " ".join("%.2f" % v for v in values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--micro-batches", type=int, default=16)
    parser.add_argument("--stage-ms", type=float, default=2.0, help="t, a forward's duration")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4, help="MLP layers per stage")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import sluice as sl
    p, m, t = args.workers, args.micro_batches, args.stage_ms / 1e3
    print("load average before: %s" % load_average())
    timed, mlp = [], []
    with sl.LocalCluster(workers=p) as cluster:
        for schedule, v in (("gpipe", 1), ("1f1b", 1), ("interleaved_1f1b", 2)):
            step, bubble, predicted = run(sl, cluster, args.steps, p * v, p, m, 8,
                                          Timed(int(t / v * 1e6)), schedule, v)
            ideal = (m + (p - 1) / v) * 3 * t
            timed.append((schedule, v, step, ideal, bubble, predicted))
        for workers in sorted({2, p}):
            for micro in (1, m):
                step, bubble, _ = run(sl, cluster, args.steps, workers, workers, micro,
                                      64 * m // micro, Mlp(args.width, args.layers), "1f1b", 1)
                mlp.append((workers, micro, step, bubble))
    print("load average after: %s" % load_average())
    print()
    print("Timed stages: p = %d workers, m = %d, t = %.1f ms forward, 2t backward" % (p, m, t * 1e3))
    print()
    print("| schedule | stages per worker | step (ms) | ideal (ms) | efficiency ideal/step "
          "| measured bubble per worker | predicted |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for schedule, v, step, ideal, bubble, predicted in timed:
        print("| %s | %d | %.1f | %.1f | %.3f | %s | %s |" % (
            schedule, v, step * 1e3, ideal * 1e3, ideal / step, fmt(bubble), fmt(predicted)))
    print()
    print("MLP: %d layers of width %d per stage, batch %d rows; 1F1B" % (
        args.layers, args.width, 64 * m))
    print()
    print("| workers | micro-batches | step (ms) | rows/s | speed-up over m = 1 "
          "| measured bubble per worker |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = {}
    for workers, micro, step, bubble in mlp:
        base.setdefault(workers, step)
        print("| %d | %d | %.1f | %.0f | %.2fx | %s |" % (
            workers, micro, step * 1e3, 64 * m / step, base[workers] / step, fmt(bubble)))


if __name__ == "__main__":
    main()
