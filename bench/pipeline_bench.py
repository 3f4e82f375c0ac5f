#!/usr/bin/env python3
"""Pipeline efficiency: p stages on p workers of a LocalCluster, m micro-batches under 1F1B (and
GPipe), against the ideal t x (m + p - 1) of the design's target (>= 0.9x ideal throughput at
p = 4, m = 16), with the measured bubble beside the verifier's prediction.

The model is p stages of `--layers` tanh(x W) layers of width `--width` each; the batch
(m x `--micro-batch` rows) is generated on worker 0 (the client link carries nothing but the
step) and the loss is mean(h^2) on the last stage. Per schedule the script runs `--steps`
steps after two warm-up steps, fetching the pipeline's timing with each, and reports the median
step T; t_F and t_B, the median forward and backward action durations measured in the same run
(each action between its worker's Timestamp nodes); ideal = (m + p - 1) (t_F + t_B), the
makespan of a perfect pipeline of those actions; efficiency = ideal / T; and each worker's
measured bubble beside the predicted one. A run with m = 1 (the same model, model-parallel
without micro-batches) gives the speed-up pipelining buys.

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/pipeline_bench.py --stages 4 --micro-batches 16
"""

import argparse
import statistics
import time

import numpy as np

from bench_util import load_average


def build(sl, p, m, micro, width, layers, schedule):
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            x = sl.random_uniform([m * micro, width], seed=1)
        h = x
        for s in range(p):
            with sl.pipeline.stage(s, "/job:worker/task:%d" % s):
                for k in range(layers):
                    w = sl.Variable(np.eye(width, dtype=np.float32) * 0.9, name="w%d_%d" % (s, k))
                    h = sl.tanh(sl.matmul(h, w))
                if s == p - 1:
                    loss = sl.reduce_mean(sl.square(h))
        pipe = sl.pipeline.Pipeline(m, schedule=schedule, inputs=[x])
        train = sl.train.GradientDescentOptimizer(0.01).minimize(loss, pipeline=pipe)
        init = sl.global_variables_initializer()
    return g, train, init, pipe


def measure(sl, cluster, args, m, schedule):
    g, train, init, pipe = build(sl, args.stages, m, args.micro_batch, args.width, args.layers,
                                 schedule)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for _ in range(2):
            sess.run([train, pipe.timing])
        steps, forward, backward, bubbles = [], [], [], []
        for _ in range(args.steps):
            start = time.perf_counter()
            _, timing = sess.run([train, pipe.timing])
            steps.append(time.perf_counter() - start)
            measured = pipe.measure(timing)
            for slots in measured.timeline:
                for action, s, e in slots:
                    (forward if "F" in action else backward).append(e - s)
            bubbles.append(measured.bubbles)
    step = statistics.median(steps)
    t_f, t_b = statistics.median(forward), statistics.median(backward)
    ideal = (m + args.stages - 1) * (t_f + t_b)
    bubble = [statistics.median(b[w] for b in bubbles) for w in range(args.stages)]
    return step, t_f, t_b, ideal, bubble, pipe.report.bubbles


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--micro-batches", type=int, default=16)
    parser.add_argument("--micro-batch", type=int, default=64, help="rows per micro-batch")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4, help="layers per stage")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import sluice as sl
    print("load average before: %s" % load_average())
    rows = []
    with sl.LocalCluster(workers=args.stages) as cluster:
        for schedule, m in (("1f1b", args.micro_batches), ("gpipe", args.micro_batches),
                            ("gpipe", 1)):
            step, t_f, t_b, ideal, bubble, predicted = measure(sl, cluster, args, m, schedule)
            rows.append((schedule, m, step, t_f, t_b, ideal, bubble, predicted))
    print("load average after: %s" % load_average())
    p = args.stages
    print()
    print("p = %d stages of %d layers of width %d, %d rows per micro-batch" % (
        p, args.layers, args.width, args.micro_batch))
    print()
    print("| schedule | m | step T (ms) | t_F (ms) | t_B (ms) | ideal (m+p-1)(t_F+t_B) (ms) "
          "| efficiency ideal/T | rows/s | measured bubble per worker | predicted |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for schedule, m, step, t_f, t_b, ideal, bubble, predicted in rows:
        print("| %s | %d | %.2f | %.3f | %.3f | %.2f | %.2f | %.0f | %s | %s |" % (
            schedule, m, step * 1e3, t_f * 1e3, t_b * 1e3, ideal * 1e3, ideal / step,
            m * args.micro_batch / step, " ".join("%.2f" % b for b in bubble),
            " ".join("%.2f" % b for b in predicted)))
    base = [r for r in rows if r[1] == 1]
    if base:
        per_row = base[0][2] / args.micro_batch
        for schedule, m, step, *_ in rows:
            if m > 1:
                print("\n%s, m = %d: %.2fx the rows/s of the same model without micro-batches" % (
                    schedule, m, per_row * m * args.micro_batch / step))


if __name__ == "__main__":
    main()
