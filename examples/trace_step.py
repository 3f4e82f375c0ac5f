"""Traces one training step of a two-worker model on a LocalCluster: writes the step as a Chrome
trace (open it in Perfetto or chrome://tracing) and as an SVG picture, and prints the summary:
time per op type on each task, the bytes each edge carried, and where the step's time went hop
by hop.

    /usr/bin/python3 examples/trace_step.py --out /tmp/step     # /tmp/step.json, /tmp/step.svg
"""

import argparse
import json

import numpy as np

import sluice as sl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="step", help="path prefix of the .json and .svg")
    args = parser.parse_args()
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [64, 32], name="x")
        with sl.device("/job:worker/task:0"):
            w0 = sl.Variable(np.full([32, 64], 0.01, np.float32), name="w0")
            h = sl.nn.relu(sl.matmul(x, w0), name="h")
        with sl.device("/job:worker/task:1"):
            w1 = sl.Variable(np.full([64, 10], 0.01, np.float32), name="w1")
            loss = sl.reduce_mean(sl.square(sl.matmul(h, w1)), name="loss")
        train = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = sl.global_variables_initializer()
    feed = {x: np.ones([64, 32], np.float32)}
    with sl.LocalCluster(workers=2) as cluster, sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for _ in range(10):  # Warm: the first steps register the partitions.
            sess.run([loss, train], feed)
        md = sl.RunMetadata()
        sess.run([loss, train], feed,
                 options=sl.RunOptions(trace_level=sl.RunOptions.FULL_TRACE), run_metadata=md)
    # Every process of a LocalCluster runs on this host, on one clock: keep the raw times.
    with open(args.out + ".json", "w") as f:
        json.dump(sl.trace.chrome_trace(md, align_clocks=False), f)
    with open(args.out + ".svg", "w") as f:
        f.write(sl.trace.to_svg(md, align_clocks=False))
    print(sl.trace.summary(md, align_clocks=False))
    print("wrote {0}.json and {0}.svg".format(args.out))


if __name__ == "__main__":
    main()
