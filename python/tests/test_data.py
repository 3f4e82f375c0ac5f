"""sl.data: sources, the three partitioning modes (exact cover per epoch, bootstrap, feature
blocks), shuffle, repeat, batch, prefetch, and the errors that name file, row and column."""

import numpy as np
import pytest

import sluice as sl

N = 23


def ds(**kw):
    x = np.arange(N * 2, dtype=np.float32).reshape(N, 2)
    y = np.arange(N, dtype=np.int64)
    return sl.data.Dataset.from_tensor_slices((x, y))


def test_shuffle_split_sees_each_example_once_per_epoch_across_workers():
    workers, epochs = 4, 3
    seen = [[] for _ in range(epochs)]
    for w in range(workers):
        part = ds().partition(workers, w, "shuffle_split", seed=5)
        per_epoch = list(part.repeat(epochs).batch(100))  # The epochs, one after another.
        labels = np.concatenate([b[1] for b in per_epoch])
        assert len(labels) == epochs * len(list(part))
        size = len(list(part))
        assert size in (N // workers, N // workers + 1)  # Near-equal, no padding.
        for e in range(epochs):
            seen[e].extend(labels[e * size:(e + 1) * size].tolist())
    for e in range(epochs):
        assert sorted(seen[e]) == list(range(N)), e
    # A new permutation each epoch, the same one on a rerun.
    assert seen[0] != seen[1]
    again = ds().partition(workers, 0, seed=5)
    assert [int(r[1]) for r in again] == [int(r[1]) for r in again]


def test_rows_stay_whole_and_batches_end_smaller_unless_dropped():
    batches = list(ds().partition(2, 1, seed=1).batch(5))
    assert [len(b[1]) for b in batches] == [5, 5, 1]  # Worker 1 of 2 holds 11 of 23.
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 0], 2 * y)  # Features and labels still paired.
    assert [len(b[1]) for b in ds().partition(2, 1, seed=1).batch(5, drop_remainder=True)] == [
        5, 5]


def test_with_replacement_draws_per_worker_and_epoch():
    a = [int(r[1]) for r in ds().partition(2, 0, "with_replacement", seed=3)]
    b = [int(r[1]) for r in ds().partition(2, 1, "with_replacement", seed=3)]
    assert len(a) == N // 2 and a != b
    big = sl.data.Dataset.from_tensor_slices(np.arange(10))
    draws = np.concatenate(list(big.partition(1, 0, "with_replacement", seed=9,
                                              sample_size=20000).batch(20000)))
    counts = np.bincount(draws, minlength=10)  # Binomial(20000, 0.1): sd 42.4, bound 5 sd.
    assert np.all(np.abs(counts - 2000) < 212), counts


def test_feature_partition_reassembles_the_data():
    x = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    parts = [np.concatenate(list(sl.data.Dataset.from_tensor_slices(x)
                                 .partition(3, w, "feature").batch(5)))
             for w in range(3)]
    assert [p.shape[1] for p in parts] == [3, 2, 2]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)


def test_shuffle_repeat_and_prefetch_keep_every_row():
    plain = sorted(int(r[1]) for r in ds())
    shuffled = [int(r[1]) for r in ds().shuffle(8, seed=2)]
    assert sorted(shuffled) == plain and shuffled != plain
    prefetched = list(ds().partition(3, 2, seed=4).repeat(2).batch(4).prefetch(2))
    direct = list(ds().partition(3, 2, seed=4).repeat(2).batch(4))
    assert len(prefetched) == len(direct)
    for p, d in zip(prefetched, direct):
        np.testing.assert_array_equal(p[1], d[1])
    forever = iter(ds().repeat().batch(7))
    assert sum(len(next(forever)[1]) for _ in range(10)) == 70


def test_feeding_a_training_loop(graph, sess):
    x_ph = sl.placeholder(sl.float32, [None, 2])
    total = sl.reduce_sum(x_ph)
    got = sum(sess.run(total, {x_ph: x}) for x, _ in ds().batch(6))
    assert got == pytest.approx(float(np.arange(N * 2).sum()))


def test_npy_and_csv_sources(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(6, 2))
    np.save(tmp_path / "y.npy", np.arange(6))
    rows = list(sl.data.Dataset.from_npy(str(tmp_path / "x.npy"), str(tmp_path / "y.npy")))
    assert len(rows) == 6 and rows[5][1] == 5
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n")
    feats, label = next(iter(sl.data.Dataset.from_csv(str(csv), label_column="label").batch(2)))
    np.testing.assert_array_equal(feats, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(label, [0, 1])
    plain = tmp_path / "p.csv"
    plain.write_text("1,2\n3,4\n")  # No header: detected.
    assert len(sl.data.Dataset.from_csv(str(plain))) == 2


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row 3, column 2 \(b\): 'x' is not a number"):
        sl.data.Dataset.from_csv(str(bad))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match=r"ragged\.csv: row 2 has 1 columns, expected 2"):
        sl.data.Dataset.from_csv(str(ragged))
    with pytest.raises(ValueError, match="equal lengths"):
        sl.data.Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"worker index 4 is out of range for 4 workers"):
        ds().partition(4, 4)
    with pytest.raises(ValueError, match="partition mode"):
        ds().partition(2, 0, mode="round_robin")


@pytest.fixture(scope="module")
def cluster():
    with sl.LocalCluster(workers=2) as c:
        yield c


def test_the_graph_side_batches_cover_each_epoch_once_on_the_workers(cluster):
    """Each worker's op walks its shard of every epoch, the rows the client-side Dataset gives,
    in batches of 5 ending smaller; gathered from worker-side data."""
    x = np.arange(N * 2, dtype=np.float32).reshape(N, 2)
    g = sl.Graph()
    with g.as_default():
        outs = []
        for w in range(2):
            with sl.device("/job:worker/task:%d" % w):
                data = sl.Variable(x, trainable=False, name="data_%d" % w)
                idx, epoch = sl.data.shard_batch_indices(N, 2, w, batch_size=5, seed=5)
                outs.append((idx, epoch, sl.gather(data, idx)))
        init = sl.global_variables_initializer()
    with sl.Session(cluster.target, graph=g) as sess:
        sess.run(init)
        got = [sess.run(outs) for _ in range(9)]  # 3 batches an epoch per worker: 3 epochs.
    for e in range(3):
        seen = []
        for w in range(2):
            batches = [step[w] for step in got if step[w][1] == e]
            assert [len(b[0]) for b in batches] == ([5, 5, 2] if w == 0 else [5, 5, 1])
            rows = np.concatenate([b[0] for b in batches])
            for b in batches:
                np.testing.assert_array_equal(b[2], x[b[0]])  # The gathered rows.
            # The same rows, in the same order, as the Dataset's partition of that epoch.
            want = [int(r[1]) for r in ds().partition(2, w, seed=5).repeat(e + 1)][-len(rows):]
            assert rows.tolist() == want
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(N))


def test_the_graph_side_op_draws_with_replacement_and_names_bad_attributes(graph, sess):
    idx, epoch = sl.data.shard_batch_indices(10, 1, 0, batch_size=4, mode="with_replacement",
                                             sample_size=6, seed=2)
    got = [sess.run([idx, epoch]) for _ in range(4)]
    assert [len(i) for i, _ in got] == [4, 2, 4, 2] and [e for _, e in got] == [0, 0, 1, 1]
    assert all(0 <= v < 10 for i, _ in got for v in i)
    bad = sl.data.shard_batch_indices(10, 2, 2, batch_size=4)
    with pytest.raises(sl.errors.InvalidArgumentError, match="index"):
        sess.run(bad)
    mode = sl.data.shard_batch_indices(10, 1, 0, batch_size=4, mode="bootstrap")
    with pytest.raises(sl.errors.InvalidArgumentError, match="mode 'bootstrap' is not one of"):
        sess.run(mode)
    small = sl.data.shard_batch_indices(10, 4, 3, batch_size=4, drop_remainder=True)
    with pytest.raises(sl.errors.InvalidArgumentError, match="less than one batch of 4"):
        sess.run(small)
