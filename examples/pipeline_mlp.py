"""Pipelined training on a 4-worker LocalCluster: an MLP classifier of generated data cut into
pipeline stages, one per worker (two per worker for interleaved 1F1B), the batch cut into
micro-batches that flow through the stages under each schedule in turn. For each schedule it
prints the verifier's prediction (each worker's bubble, each stage's activations) before the
first step, then per epoch the loss, the accuracy (by pipelined inference) and the measured
bubble of the last step beside the predicted one, and at the end the measured step.

    /usr/bin/python3 examples/pipeline_mlp.py --micro_batches 8 --epochs 3
    /usr/bin/python3 examples/pipeline_mlp.py --schedule 1f1b
"""

import argparse

import numpy as np

import sluice as sl

FEATURES, HIDDEN, CLASSES, WORKERS = 16, 64, 4, 4


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
    per_worker = 2 if schedule == "interleaved_1f1b" else 1
    stages = WORKERS * per_worker
    x = sl.placeholder(sl.float32, [batch, FEATURES], name="x")
    y = sl.placeholder(sl.int64, [batch], name="y")
    h = x
    for s in range(stages):  # Stage s on worker s mod 4.
        with sl.pipeline.stage(s, device="/job:worker/task:%d" % (s % WORKERS)):
            fan_in = FEATURES if s == 0 else HIDDEN
            if s < stages - 1:
                h = sl.nn.relu(dense(h, fan_in, HIDDEN, "layer%d" % s))
            else:
                logits = dense(h, fan_in, CLASSES, "layer%d" % s)
                loss = sl.reduce_mean(sl.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=logits))
                classes = sl.argmax(logits, 1)
    pipe = sl.pipeline.Pipeline(micro_batches=micro_batches, schedule=schedule,
                                stages_per_worker=per_worker)
    train = sl.train.MomentumOptimizer(0.05, 0.9).minimize(loss, pipeline=pipe)
    predictions = sl.pipeline.forward(classes, micro_batches)  # Inference, pipelined too.
    return x, y, train, pipe, predictions


def train(cluster, schedule, args, xs, ys):
    g = sl.Graph()
    with g.as_default():
        x, y, train_op, pipe, predictions = build(args.batch, args.micro_batches, schedule)
        init = sl.global_variables_initializer()
    print("== {}: {} stages on {} workers, {} micro-batches of {} rows; the verifier "
          "predicts:".format(schedule, len(pipe.report.stages), WORKERS, args.micro_batches,
                             args.batch // args.micro_batches))
    print(pipe.report)
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        measured = None
        for epoch in range(args.epochs):
            losses = []
            for start in range(0, len(xs), args.batch):
                feed = {x: xs[start:start + args.batch], y: ys[start:start + args.batch]}
                out = sess.run({"train": train_op, "loss": pipe.loss, "timing": pipe.timing},
                               feed)
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
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro_batches", type=int, default=8)
    parser.add_argument("--schedule", default="all",
                        choices=["all", "gpipe", "1f1b", "interleaved_1f1b"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    xs, ys = make_data(2048, seed=1)
    schedules = (["gpipe", "1f1b", "interleaved_1f1b"] if args.schedule == "all"
                 else [args.schedule])
    with sl.LocalCluster(workers=WORKERS) as cluster:
        for schedule in schedules:
            train(cluster, schedule, args, xs, ys)


if __name__ == "__main__":
    main()
