"""Partitioned variables (get_variable(partitioner=...)), the ops that route rows between a
variable's parts (dynamic_partition, dynamic_stitch, range), the embedding lookup over parts
and the Saver's part-independent checkpoints, against numpy; and, on a cluster, the bytes a
partitioned 1M x 64 embedding really moves per step (counted on the ps tasks' TCP sockets)."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import sluice as sl

RNG = np.random.default_rng(11)


def test_dynamic_partition_stitch_and_range_match_numpy():
    data = RNG.normal(size=(7, 2))
    parts = np.array([2, 0, 1, 2, 2, 0, 1], np.int32)
    g = sl.Graph()
    with g.as_default():
        p = sl.placeholder(sl.int32, [None])
        pieces = sl.dynamic_partition(data, p, 3)
        where = sl.dynamic_partition(sl.range(sl.size(p)), p, 3)
        merged = sl.dynamic_stitch(where, pieces)
        ranges = [sl.range(5), sl.range(2, 11, 3), sl.range(1.0, 0.0, -0.25),
                  sl.range(np.int64(3), dtype=sl.int64)]
    with sl.Session(graph=g) as sess:
        got = sess.run(pieces, {p: parts})
        for k in range(3):
            np.testing.assert_array_equal(got[k], data[parts == k])
        np.testing.assert_array_equal(sess.run(merged, {p: parts}), data)
        got = sess.run(ranges)
        for have, want in zip(got, [np.arange(5), np.arange(2, 11, 3), np.arange(1.0, 0.0, -0.25),
                                    np.arange(3)]):
            np.testing.assert_allclose(have, want)
        assert got[0].dtype == np.int32 and got[2].dtype == np.float32
        assert got[3].dtype == np.int64
        with pytest.raises(sl.errors.InvalidArgumentError, match=r"partitions\[1\] = 3 is not in"):
            sess.run(pieces, {p: [0, 3, 1, 0, 0, 0, 0]})


def test_partitioners_cut_as_tf1():
    shape = sl.TensorShape([1000, 64])
    assert sl.fixed_size_partitioner(3)(shape=shape, dtype=sl.float32) == [3, 1]
    assert sl.fixed_size_partitioner(5000)(shape=shape, dtype=sl.float32) == [1000, 1]
    # 256,000 bytes: at least 64 KiB a part gives 3 parts; at most 100,000 bytes a part, 3.
    assert sl.min_max_variable_partitioner(8, min_slice_size=64 << 10)(
        shape=shape, dtype=sl.float32) == [3, 1]
    assert sl.min_max_variable_partitioner(2, min_slice_size=64 << 10)(
        shape=shape, dtype=sl.float32) == [2, 1]
    assert sl.min_max_variable_partitioner(8)(shape=shape, dtype=sl.float32) == [1, 1]
    assert sl.variable_axis_size_partitioner(100_000)(shape=shape, dtype=sl.float32) == [3, 1]
    assert sl.variable_axis_size_partitioner(100_000, max_shards=2)(
        shape=shape, dtype=sl.float64) == [2, 1]


def test_a_partitioned_variable_reads_and_trains_as_one():
    value = RNG.normal(size=(10, 4)).astype(np.float32)
    x_value = RNG.normal(size=(3, 10)).astype(np.float32)
    g = sl.Graph()
    with g.as_default():
        with sl.variable_scope("layer", partitioner=sl.fixed_size_partitioner(3)):
            w = sl.get_variable("w", initializer=value)
            glorot = sl.get_variable("g", [10, 4])
        with sl.variable_scope("layer", reuse=True):
            assert sl.get_variable("w", partitioner=sl.fixed_size_partitioner(3)) is w
        x = sl.constant(x_value)
        loss = sl.reduce_sum(sl.square(x @ w))
        step = sl.train.GradientDescentOptimizer(0.01).minimize(loss)
        init = sl.global_variables_initializer()
    assert isinstance(w, sl.PartitionedVariable) and len(w) == 3
    assert [p.op.name for p in w] == ["layer/w/part_0", "layer/w/part_1", "layer/w/part_2"]
    assert [p.shape.as_list() for p in w] == [[4, 4], [3, 4], [3, 4]]
    assert w.shape == (10, 4) and w.offsets() == [0, 4, 7]
    with sl.Session(graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(w), value)
        # Glorot's limit comes from the whole shape, not a part's: sqrt(6 / (10 + 4)).
        assert np.abs(sess.run(glorot)).max() <= np.sqrt(6 / 14)
        assert np.abs(sess.run(glorot)).max() > np.sqrt(6 / 7) * 0.5
        sess.run(step)
        grad = 2 * x_value.T @ (x_value @ value)
        np.testing.assert_allclose(sess.run(w), value - 0.01 * grad, rtol=1e-5, atol=1e-6)


def test_embedding_lookup_over_parts_gathers_and_updates_only_its_rows():
    table = RNG.normal(size=(11, 3))
    ids = np.array([[10, 0, 4], [4, 7, 2]])
    g = sl.Graph()
    with g.as_default():
        emb = sl.get_variable("emb", initializer=table,
                              partitioner=sl.fixed_size_partitioner(4))
        idx = sl.placeholder(sl.int64, [2, 3])
        rows = sl.nn.embedding_lookup(emb, idx)
        as_list = sl.nn.embedding_lookup(list(emb), idx, partition_strategy="div")
        by_mod = sl.nn.embedding_lookup(list(emb), idx)  # TF1's default for a list: "mod".
        loss = sl.reduce_sum(rows * np.arange(3.0))
        step = sl.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = sl.global_variables_initializer()
    assert rows.shape == (2, 3, 3)
    with sl.Session(graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(rows, {idx: ids}), table[ids])
        np.testing.assert_array_equal(sess.run(as_list, {idx: ids}), table[ids])
        # "mod" over parts of 3, 3, 3, 2 rows: id i is row i // 4 of part i % 4.
        parts = np.split(table, [3, 6, 9])
        want = np.array([[parts[i % 4][i // 4] for i in r] for r in ids])
        np.testing.assert_array_equal(sess.run(by_mod, {idx: ids}), want)
        sess.run(step, {idx: ids})
        want = table.copy()
        for i in ids.ravel():
            want[i] -= 0.5 * np.arange(3.0)
        np.testing.assert_allclose(sess.run(emb), want, rtol=1e-12)
        with pytest.raises(sl.errors.InvalidArgumentError, match=r"is not in \[0, 2\)"):
            sess.run(rows, {idx: [[11, 0, 0], [0, 0, 0]]})


def test_saver_restores_onto_any_number_of_parts(tmp_path):
    table = RNG.normal(size=(9, 2))

    def graph(parts):
        g = sl.Graph()
        with g.as_default():
            partitioner = sl.fixed_size_partitioner(parts) if parts else None
            emb = sl.get_variable("emb", [9, 2], sl.float64, sl.zeros_initializer(sl.float64),
                                  partitioner=partitioner)
            bias = sl.get_variable("bias", [2], sl.float64, sl.zeros_initializer(sl.float64))
        return g, emb, bias

    g, emb, bias = graph(3)
    with g.as_default():
        assign = [p.assign(v) for p, v in zip(emb, np.split(table, 3))] + [bias.assign([1, 2])]
    with sl.Session(graph=g) as sess:
        sess.run(assign)
        path = sl.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    # The file holds the whole variable under its own name.
    names = dict(sl._core.core._read_checkpoint(path))
    assert sorted(names) == ["bias", "emb"]
    np.testing.assert_array_equal(names["emb"], table)
    for parts in (2, 4, 0):
        g2, emb2, bias2 = graph(parts)
        with sl.Session(graph=g2) as sess:
            sl.train.Saver().restore(sess, path)
            np.testing.assert_array_equal(sess.run(emb2), table)
            np.testing.assert_array_equal(sess.run(bias2), [1, 2])
            if parts == 4:  # Saved from 4 parts, restored onto 3.
                again = sl.train.Saver([emb2]).save(sess, str(tmp_path / "four.ckpt"))
        assert not [f for f in tmp_path.iterdir() if f.name.startswith(".restore-")]
    g3, emb3, _ = graph(3)
    with sl.Session(graph=g3) as sess:
        sl.train.Saver([emb3]).restore(sess, again)
        np.testing.assert_array_equal(sess.run(emb3), table)
    g4 = sl.Graph()
    with g4.as_default():
        wrong = sl.get_variable("emb", [9, 3], sl.float64,
                                partitioner=sl.fixed_size_partitioner(2))
        other = sl.get_variable("other", [4], sl.float64, partitioner=sl.fixed_size_partitioner(2))
    with sl.Session(graph=g4) as sess:
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match=r"partitioned variable 'emb' is float64 \[9, 3\] in the graph "
                                 r"but float64 \[9, 2\] in checkpoint"):
            sl.train.Saver([wrong]).restore(sess, path)
        with pytest.raises(sl.errors.NotFoundError,
                           match="partitioned variable 'other' is not in checkpoint"):
            sl.train.Saver([other]).restore(sess, path)


def tcp_bytes(pid):
    """(bytes received, bytes sent and acknowledged) over the TCP sockets of process `pid`."""
    out = subprocess.run(["ss", "-tinpH"], check=True, capture_output=True, text=True).stdout
    received = sent = 0
    # Each socket is a line naming its process, then a line of tcp_info counters.
    for head, info in zip(out.splitlines()[::2], out.splitlines()[1::2]):
        if "pid={},".format(pid) not in head:
            continue
        r = re.search(r"bytes_received:(\d+)", info)
        s = re.search(r"bytes_acked:(\d+)", info)
        received += int(r.group(1)) if r else 0
        sent += int(s.group(1)) if s else 0
    return received, sent


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2, tools/setup.sh)")
def test_a_partitioned_embedding_on_two_ps_tasks_moves_only_the_looked_up_rows():
    """A 1M x 64 float32 embedding (256 MB) in two parts on two ps tasks, trained by plain SGD
    with batches of 1,000 ids: per step each ps task sends the rows looked up in its part and
    receives their gradient rows (about 2 x 500 x 256 bytes), measured on its TCP sockets,
    never the 128 MB of its part."""
    rows, dim, batch, steps = 1_000_000, 64, 1_000, 3
    with sl.LocalCluster(workers=1, ps=2) as cluster:
        g = sl.Graph()
        with g.as_default():
            setter = sl.train.replica_device_setter(ps_tasks=2, worker_device="/job:worker/task:0")
            with sl.device(setter):
                emb = sl.get_variable("emb", [rows, dim], initializer=sl.zeros_initializer(),
                                      partitioner=sl.fixed_size_partitioner(2))
                idx = sl.placeholder(sl.int64, [batch])
                loss = sl.reduce_sum(sl.square(sl.nn.embedding_lookup(emb, idx) - 1.0))
                step = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
                untouched = sl.placeholder(sl.int64, [4])
                looked_up = sl.nn.embedding_lookup(emb, untouched)
            init = sl.global_variables_initializer()
        assert sorted(p.op.device for p in emb) == ["/job:ps/task:0", "/job:ps/task:1"]
        feed = {idx: RNG.choice(rows, batch, replace=False)}
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(init)
            sess.run(step, feed)  # Connections made, partitions registered.
            before = [tcp_bytes(cluster.ps_pid(i)) for i in range(2)]
            for _ in range(steps):
                sess.run(step, feed)
            after = [tcp_bytes(cluster.ps_pid(i)) for i in range(2)]
            # Each step takes the touched rows 20% closer to 1 (the loss' gradient is 2(x - 1)).
            np.testing.assert_allclose(sess.run(looked_up, {untouched: feed[idx][:4]}),
                                       1 - 0.8 ** (steps + 1), rtol=1e-5)
            others = np.setdiff1d([0, 1, rows // 2, rows - 1], feed[idx])[:1].repeat(4)
            assert not sess.run(looked_up, {untouched: others}).any()
    row_bytes = dim * 4
    for i in range(2):
        mine = int(np.sum((feed[idx] >= rows // 2) == bool(i)))
        received = (after[i][0] - before[i][0]) / steps
        sent = (after[i][1] - before[i][1]) / steps
        # The rows (and their ids) each way, plus the control plane's step messages.
        assert mine * row_bytes <= sent < mine * row_bytes + 64_000, (i, mine, sent)
        assert mine * row_bytes <= received < mine * row_bytes + 64_000, (i, mine, received)


def test_a_checkpoint_of_two_ps_tasks_restores_onto_three(tmp_path):
    """A model whose variables are spread over two ps tasks (an embedding in two parts, a
    dense layer with its ps state) is saved, then restored into the same model built for
    three ps tasks (the embedding in three parts): the values and the ps state come back."""
    table = RNG.normal(size=(10, 4))
    dense = RNG.normal(size=(4, 1))

    def model(tasks):
        g = sl.Graph()
        with g.as_default():
            with sl.device(sl.train.replica_device_setter(ps_tasks=tasks)):
                emb = sl.get_variable("emb", initializer=table,
                                      partitioner=sl.fixed_size_partitioner(tasks))
                w = sl.Variable(dense, name="w")
            pulled = sl.ps.pull(w, worker=0)
            ids = sl.placeholder(sl.int64, [3])
            loss = sl.reduce_sum(sl.matmul(sl.nn.embedding_lookup(emb, ids), pulled))
            push = sl.ps.push(w, sl.gradients(loss, [pulled])[0], worker=0, learning_rate=0.5)
            counters = sl.ps.counters(w)
            init = sl.global_variables_initializer()
        return g, emb, w, ids, push, counters, init

    feed_ids = np.array([0, 9, 5])
    path = str(tmp_path / "model.ckpt")
    with sl.LocalCluster(workers=1, ps=2) as cluster:
        g, emb, w, ids, push, counters, init = model(2)
        assert len({p.op.device for p in emb}) == 2
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(init)
            sess.run(push, {ids: feed_ids})
            sl.train.Saver().save(sess, path)
            saved_w = sess.run(w)
    np.testing.assert_allclose(saved_w, dense - 0.5 * table[feed_ids].sum(0)[:, None],
                               rtol=1e-12)
    with sl.LocalCluster(workers=1, ps=3) as cluster:
        g, emb, w, ids, push, counters, init = model(3)
        assert len({p.op.device for p in emb}) == 3
        with sl.Session(cluster.target, graph=g) as sess:
            sl.train.Saver().restore(sess, path)
            np.testing.assert_array_equal(sess.run(emb), table)
            np.testing.assert_array_equal(sess.run(w), saved_w)
            assert sess.run(counters)[0] == 1  # The push saved with the value.
