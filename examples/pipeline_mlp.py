"""Pipelined training on a LocalCluster: a 4-stage MLP classifier of generated data, one stage
per worker, the batch cut into micro-batches that flow through the stages under a schedule
(1F1B by default). Before the first step it prints the verifier's prediction (each worker's
bubble, each stage's activations); each epoch prints the loss, the accuracy and the measured
bubble of the last step beside the predicted one; at the end the measured timeline.

    /usr/bin/python3 examples/pipeline_mlp.py --micro_batches 8 --schedule 1f1b --epochs 5
"""

import argparse

import numpy as np

import sluice as sl

FEATURES, HIDDEN, CLASSES, STAGES = 16, 64, 4, 4


def make_data(n, seed):
    """Four Gaussian classes in 16 dimensions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centers = rng.normal(scale=0.4, size=(CLASSES, FEATURES))
    return (rng.normal(size=(n, FEATURES)) + centers[labels]).astype(np.float32), labels


def dense(x, fan_in, fan_out, name):
    w = sl.get_variable(name + "/w", [fan_in, fan_out],
                        initializer=sl.glorot_uniform_initializer(seed=len(name)))
    b = sl.get_variable(name + "/b", [fan_out], initializer=sl.zeros_initializer())
    return sl.matmul(x, w) + b


def build(batch, micro_batches, schedule):
    x = sl.placeholder(sl.float32, [batch, FEATURES], name="x")
    y = sl.placeholder(sl.int64, [batch], name="y")
    h = x
    for s in range(STAGES):
        with sl.pipeline.stage(s, device="/job:worker/task:%d" % s):
            fan_in = FEATURES if s == 0 else HIDDEN
            if s < STAGES - 1:
                h = sl.nn.relu(dense(h, fan_in, HIDDEN, "layer%d" % s))
            else:
                logits = dense(h, fan_in, CLASSES, "layer%d" % s)
                loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=logits))
                classes = sl.argmax(logits, 1)
    pipe = sl.pipeline.Pipeline(micro_batches=micro_batches, schedule=schedule)
    train = sl.train.MomentumOptimizer(0.05, 0.9).minimize(loss, pipeline=pipe)
    predictions = sl.pipeline.forward(classes, micro_batches)  # Inference, pipelined too.
    return x, y, train, pipe, predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro_batches", type=int, default=8)
    parser.add_argument("--schedule", default="1f1b", choices=["gpipe", "1f1b"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    xs, ys = make_data(2048, seed=1)
    x, y, train, pipe, predictions = build(args.batch, args.micro_batches, args.schedule)
    init = sl.global_variables_initializer()
    print("schedule {} on {} workers, {} micro-batches of {} rows; the verifier predicts:".format(
        args.schedule, STAGES, args.micro_batches, args.batch // args.micro_batches))
    print(pipe.report)
    with sl.LocalCluster(workers=STAGES) as cluster, sl.Session(cluster.target) as sess:
        sess.run(init)
        measured = None
        for epoch in range(args.epochs):
            losses = []
            for start in range(0, len(xs), args.batch):
                feed = {x: xs[start:start + args.batch], y: ys[start:start + args.batch]}
                out = sess.run({"train": train, "loss": pipe.loss, "timing": pipe.timing}, feed)
                losses.append(out["loss"])
            measured = pipe.measure(out["timing"])
            correct = sum(int(np.sum(sess.run(predictions, {x: xs[s:s + args.batch]}) ==
                                     ys[s:s + args.batch]))
                          for s in range(0, len(xs), args.batch))
            print("epoch {}  loss {:.4f}  accuracy {:.3f}  bubble {} (predicted {})".format(
                epoch, float(np.mean(losses)), correct / len(xs),
                " ".join("%.2f" % b for b in measured.bubbles),
                " ".join("%.2f" % b for b in pipe.report.bubbles)))
        print(measured)


if __name__ == "__main__":
    main()
