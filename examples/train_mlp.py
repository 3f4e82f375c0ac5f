#!/usr/bin/python3
"""Trains a small MLP classifier on a two-worker cluster from Python; prints loss per step.

The two layers are placed on two workers ("/job:worker/task:0" and ".../task:1") of an
sl.LocalCluster: one master and two worker processes of sluice_server on loopback. Activations
and gradients cross between the workers on the data plane at every step. --in_process runs the
same graph in this process instead (the device requests are then ignored).

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 examples/train_mlp.py --steps 50
"""

import contextlib

import argparse

import numpy as np

import sluice as sl


def make_data(rng, n_per_class=100):
    """Three Gaussian blobs in 4-D, one per class."""
    centers = rng.normal(scale=2.0, size=(3, 4))
    labels = np.repeat(np.arange(3), n_per_class)
    x = centers[labels] + 0.5 * rng.normal(size=(len(labels), 4))
    return x.astype(np.float32), labels.astype(np.int64)


def build_model(hidden, learning_rate):
    """Returns (graph, x, y, loss, accuracy, train_op, init)."""
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None, 4], name="x")
        y = sl.placeholder(sl.int64, shape=[None], name="y")
        with sl.device("/job:worker/task:0"), sl.name_scope("layer1"):
            w1 = sl.Variable(sl.random_normal([4, hidden], stddev=0.5, seed=1), name="w")
            b1 = sl.Variable(sl.zeros([hidden]), name="b")
            h = sl.tanh(x @ w1 + b1)
        with sl.device("/job:worker/task:1"), sl.name_scope("layer2"):
            w2 = sl.Variable(sl.random_normal([hidden, 3], stddev=0.5, seed=2), name="w")
            b2 = sl.Variable(sl.zeros([3]), name="b")
            logits = h @ w2 + b2
        loss = sl.reduce_mean(
            sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), name="loss")
        train_op = sl.train.MomentumOptimizer(learning_rate, momentum=0.9).minimize(
            loss, name="train")
        init = sl.global_variables_initializer()  # After minimize: momentum slots too.
    return g, x, y, loss, logits, train_op, init


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--in_process", action="store_true",
                        help="run in this process instead of on a two-worker LocalCluster")
    args = parser.parse_args()

    xs, ys = make_data(np.random.default_rng(0))
    g, x, y, loss, logits, train_op, init = build_model(args.hidden, args.learning_rate)
    with contextlib.ExitStack() as stack:
        if args.in_process:
            target = ""
        else:
            cluster = stack.enter_context(sl.LocalCluster(workers=2))
            target = cluster.target
            print("cluster: master {}, 2 workers".format(target), flush=True)
        sess = stack.enter_context(sl.Session(target, graph=g))
        sess.run(init)
        # Steps/s, loss and time left on stderr (tqdm's bar on a terminal when installed).
        progress = sl.progress.Progress(total=args.steps, desc="train")
        for step in range(1, args.steps + 1):
            _, loss_value = sess.run([train_op, loss], feed_dict={x: xs, y: ys})
            print("step {:3d}  loss {:.4f}".format(step, loss_value))
            progress.update(loss=loss_value)
        progress.close()
        accuracy = (sess.run(logits, feed_dict={x: xs}).argmax(axis=1) == ys).mean()
    print("training accuracy {:.3f}".format(accuracy))


if __name__ == "__main__":
    main()
