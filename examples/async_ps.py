"""Asynchronous training against parameter servers on a LocalCluster of 2 ps + 3 workers.

A click-through-style classifier of generated data: each example has a categorical id (one of
1,000, looked up in an 8-wide embedding) and 4 dense features; a dense layer reads the embedding
row and the features. The variables go to the ps tasks by bytes
(sl.train.replica_device_setter); three worker threads, each with its own graph and session
(between-graph replication) and its own shard of the data (sl.data, shuffle_split), pull,
compute and push without waiting for each other, with a rule declared per variable
(sl.ps.declare): the embedding's rows lock-free (Hogwild on rows: only the rows a batch
touches travel, and pushes write them without the variable's lock), the dense weights by
DC-ASGD, the bias by plain ASGD. Prints the placement, then per epoch the test loss and
accuracy, the examples/s of all workers together, and each variable's delay histogram.

    /usr/bin/python3 examples/async_ps.py --epochs 5
"""

import argparse
import threading
import time

import numpy as np

import sluice as sl

VOCAB, EMBED, DENSE = 1000, 8, 4


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, n)
    dense = rng.normal(size=(n, DENSE)).astype(np.float32)
    id_effect = np.sin(np.arange(VOCAB) * 0.37)  # The hidden rule: a per-id effect ...
    margin = 1.5 * id_effect[ids] + dense @ np.array([1.0, -0.5, 0.25, 0.0]) + 0.2
    labels = (margin + rng.normal(0, 0.3, n) > 0).astype(np.float32)[:, None]
    return ids, dense, labels


def build(worker, batch):
    """Worker `worker`'s graph: its pulls, loss and pushes (or, worker None, the evaluation).
    Each graph gets a setter of its own: built in the same order, every graph places each
    variable on the same ps task."""
    setter = sl.train.replica_device_setter(ps_tasks=2)
    g = sl.Graph()
    with g.as_default():
        # One rule per variable, declared once; the pulls and pushes below follow it.
        sl.ps.declare("embedding", "hogwild", learning_rate=5.0)
        sl.ps.declare("dense_w", "dc_asgd", learning_rate=0.5, lam=0.5)
        sl.ps.declare("dense_b", "asgd", learning_rate=0.5)
        with sl.device(setter):
            # Small random rows: with rows and weights both zero neither would ever move.
            table = np.random.default_rng(0).normal(0, 0.1, (VOCAB, EMBED)).astype(np.float32)
            emb = sl.Variable(table, name="embedding")
            w = sl.Variable(np.zeros((EMBED + DENSE, 1), np.float32), name="dense_w")
            b = sl.Variable(np.zeros((1,), np.float32), name="dense_b")
        ids = sl.placeholder(sl.int64, [batch])
        dense = sl.placeholder(sl.float32, [batch, DENSE])
        labels = sl.placeholder(sl.float32, [batch, 1])
        m = worker or 0
        rows = sl.ps.pull_rows(emb, ids, worker=m)
        w_m = sl.ps.pull(w, worker=m)
        b_m = sl.ps.pull(b, worker=m)
        with sl.device("/job:worker/task:%d" % m):
            logits = sl.matmul(sl.concat([rows, dense], 1), w_m) + b_m
            loss = sl.reduce_mean(sl.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                          logits=logits))
            accuracy = sl.reduce_mean(sl.cast(sl.equal(sl.cast(logits > 0, sl.float32),
                                                       labels), sl.float32))
            g_rows, g_w, g_b = sl.gradients(loss, [rows, w_m, b_m])
        push = sl.group(sl.ps.push_rows(emb, ids, g_rows, worker=m),
                        sl.ps.push(w, g_w, worker=m),
                        sl.ps.push(b, g_b, worker=m))
        init = sl.global_variables_initializer()
        histograms = {v.op.name: sl.ps.delays(v) for v in (emb, w, b)}
    return dict(graph=g, ids=ids, dense=dense, labels=labels, loss=loss, accuracy=accuracy,
                push=push, init=init, histograms=histograms, setter=setter)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    ids, dense, labels = make_data(6000, seed=1)
    test = make_data(1000, seed=2)
    with sl.LocalCluster(workers=args.workers, ps=2) as cluster:
        workers = [build(m, args.batch) for m in range(args.workers)]
        print("placement (bytes per ps task):\n" + workers[0]["setter"].describe())
        evaluation = build(None, len(test[0]))
        sessions = [sl.Session(cluster.target, graph=w["graph"]) for w in workers]
        judge = sl.Session(cluster.target, graph=evaluation["graph"])
        sessions[0].run(workers[0]["init"])  # The chief initialises the shared variables.
        data = sl.data.Dataset.from_tensor_slices((ids, dense, labels))
        for epoch in range(args.epochs):
            def train(m):
                shard = data.partition(args.workers, m, "shuffle_split", seed=epoch)
                for i, d, y in shard.batch(args.batch, drop_remainder=True):
                    w = workers[m]
                    sessions[m].run(w["push"], {w["ids"]: i, w["dense"]: d, w["labels"]: y})

            start = time.perf_counter()
            threads = [threading.Thread(target=train, args=(m,)) for m in range(args.workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start
            seen = args.workers * (len(ids) // args.workers // args.batch) * args.batch
            e = evaluation
            loss, acc = judge.run([e["loss"], e["accuracy"]],
                                  {e["ids"]: test[0], e["dense"]: test[1], e["labels"]: test[2]})
            print("epoch {}  test loss {:.4f}  accuracy {:.3f}  {:.0f} examples/s".format(
                epoch, loss, acc, seen / seconds), flush=True)
        for name, counts in judge.run(evaluation["histograms"]).items():
            print("delays of {}: {}".format(name, " ".join(
                "{}:{}".format(tau, n) for tau, n in enumerate(counts) if n)))
        for s in sessions + [judge]:
            s.close()


if __name__ == "__main__":
    main()
