"""Data-parallel training on a LocalCluster with each synchronous strategy.

A logistic-regression classifier of generated data (two Gaussian classes in 8 dimensions) is
trained on 4 workers, each reading its shard of every epoch (sl.data, shuffle_split), with
BSP (all-reduce, and parameter server on a fifth task), model averaging (K = 4), elastic
averaging and ADMM; each prints loss and accuracy per epoch and the bytes each task sends when
every op of its graph runs once (counted on the graph's cross-device edges).

    /usr/bin/python3 examples/data_parallel.py --workers 4 --epochs 5
"""

import argparse

import numpy as np

import sluice as sl

FEATURES = 8


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    centers = np.where(labels[:, None] == 1, 0.8, -0.8)
    x = (rng.normal(size=(n, FEATURES)) + centers).astype(np.float64)
    return x, labels.astype(np.float64)[:, None]


def model(x, y):
    w = sl.get_variable("w", initializer=np.zeros((FEATURES, 1)))
    b = sl.get_variable("b", initializer=np.zeros((1,)))
    logits = sl.matmul(x, w) + b
    return sl.reduce_mean(sl.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))


def bytes_sent_per_step(graph, devices):
    """Bytes each device sends per step, from the graph's edges between devices."""
    sent = {d: 0 for d in devices}
    for op in graph.get_operations():
        for t in op.inputs:
            src = t.op.device
            if src in sent and op.device in sent and src != op.device and t.shape is not None:
                sent[src] += int(np.prod([d or 0 for d in t.shape])) * np.dtype(
                    t.dtype.as_numpy_dtype).itemsize
    return sent


def train(name, strategy, cluster, devices, data, epochs, batch):
    g = sl.Graph()
    with g.as_default():
        inputs = [(sl.placeholder(sl.float64, [None, FEATURES]),
                   sl.placeholder(sl.float64, [None, 1])) for _ in devices]
        ops = strategy.minimize(sl.train.GradientDescentOptimizer(0.5), model, inputs)
        init = sl.global_variables_initializer()
        w, b = strategy.replica_variables[0]
        xe = sl.placeholder(sl.float64, [None, FEATURES])
        ye = sl.placeholder(sl.float64, [None, 1])
        predicted = sl.cast(sl.greater(sl.matmul(xe, w) + b, 0.0), sl.float64)
        accuracy = sl.reduce_mean(sl.cast(sl.equal(predicted, ye), sl.float64))
    tasks = ["/job:worker/task:%d" % i for i in range(cluster.num_workers)]  # The ps too.
    sent = bytes_sent_per_step(g, tasks)
    print("{}: bytes each task sends when every op of the graph runs once: {}".format(
        name, ", ".join("task {} {}".format(i, sent[d]) for i, d in enumerate(tasks))))
    x, y = data
    # Each worker's stream: its shard of every epoch, a new permutation per epoch.
    streams = [iter(sl.data.Dataset.from_tensor_slices((x, y))
                    .partition(len(devices), i, "shuffle_split", seed=3)
                    .batch(batch, drop_remainder=True).repeat(epochs).prefetch(2))
               for i in range(len(devices))]
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        for epoch in range(epochs):
            losses = []
            for _ in range(len(x) // len(devices) // batch):
                feed = {}
                for (x_ph, y_ph), s in zip(inputs, streams):
                    feed[x_ph], feed[y_ph] = next(s)
                if isinstance(strategy, sl.train.BSPStrategy):
                    losses.append(sess.run([ops[1], ops[0]], feed)[0])
                elif isinstance(strategy, sl.train.ADMMStrategy):
                    strategy.run_round(sess, feed)
                    losses.append(sess.run(ops[2], feed))
                else:
                    losses.append(strategy.run_step(sess, feed))
            acc = sess.run(accuracy, {xe: x, ye: y})
            print("{} epoch {}  loss {:.4f}  accuracy {:.3f}".format(
                name, epoch, float(np.mean(losses)), acc), flush=True)
    return acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=25)
    args = parser.parse_args()
    data = make_data(800, seed=1)
    # One more task than replicas: the parameter server of BSP's parameter-server form.
    with sl.LocalCluster(workers=args.workers + 1) as cluster:
        devices = ["/job:worker/task:%d" % i for i in range(args.workers)]
        ps = "/job:worker/task:%d" % args.workers
        strategies = [
            ("bsp", sl.train.BSPStrategy(devices)),
            ("bsp_parameter_server", sl.train.BSPStrategy(devices, parameter_devices=[ps])),
            ("model_averaging", sl.train.ModelAveragingStrategy(devices, period=4)),
            ("easgd", sl.train.ElasticAveragingStrategy(devices, moving_rate=0.1)),
            ("admm", sl.train.ADMMStrategy(devices, rho=1.0, inner_steps=5)),
        ]
        for name, strategy in strategies:
            train(name, strategy, cluster, devices, data, args.epochs, args.batch)


if __name__ == "__main__":
    main()
