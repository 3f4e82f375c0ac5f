"""sl.train.Saver: save and restore round trips, subsets, and failures that change nothing."""

import os

import numpy as np
import pytest

import sluice as sl


def _model():
    """A small regression model; returns (graph, x, y, loss, train_op, init, [w, b])."""
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, [None, 3], name="x")
        y = sl.placeholder(sl.float32, [None, 1], name="y")
        w = sl.Variable(sl.random_normal([3, 1], seed=5), name="w")
        b = sl.Variable(np.zeros(1, np.float32), name="b")
        loss = sl.reduce_mean(sl.square(x @ w + b - y))
        train_op = sl.train.AdamOptimizer(0.1).minimize(loss)
        init = sl.global_variables_initializer()
    return g, x, y, loss, train_op, init, [w, b]


def _data():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(32, 3)).astype(np.float32)
    return xs, (xs @ np.array([[1.0], [-2.0], [0.5]]) + 0.25).astype(np.float32)


def test_save_then_restore_into_a_fresh_graph_continues_training(tmp_path):
    xs, ys = _data()
    path = str(tmp_path / "model.ckpt")
    g, x, y, loss, train_op, init, (w, b) = _model()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        for _ in range(20):
            sess.run(train_op, {x: xs, y: ys})
        saved = sess.run([w, b, loss], {x: xs, y: ys})
        assert sl.train.Saver().save(sess, path, global_step=20) == path + "-20"
        # Training on in the first session gives the reference for after the restore.
        sess.run(train_op, {x: xs, y: ys})
        reference = sess.run([w, b], {x: xs, y: ys})
    assert os.path.exists(path + "-20")
    g2, x2, y2, loss2, train2, _, (w2, b2) = _model()
    with sl.Session(graph=g2) as sess2:
        sl.train.Saver().restore(sess2, path + "-20")  # Slots included: no initializer.
        restored = sess2.run([w2, b2, loss2], {x2: xs, y2: ys})
        sess2.run(train2, {x2: xs, y2: ys})
        after = sess2.run([w2, b2])
    for got, want in zip(restored, saved):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(after, reference):
        np.testing.assert_array_equal(got, want)


def test_subset_and_errors_leave_variables_untouched(tmp_path):
    path = str(tmp_path / "w.ckpt")
    g, _, _, _, _, init, (w, b) = _model()
    with g.as_default():
        set_w = w.assign(np.full((3, 1), 7.0, np.float32))
    with sl.Session(graph=g) as sess:
        sess.run(init)
        sess.run(set_w)
        sl.train.Saver([w]).save(sess, path)
    with sl.Session(graph=g) as sess:
        sess.run(init)
        before = sess.run([w, b])
        with pytest.raises(sl.errors.NotFoundError, match="the checkpoint has no variable"):
            sl.train.Saver().restore(sess, path)  # Everything requested; the file has only w.
        with pytest.raises(sl.errors.NotFoundError, match="cannot open checkpoint"):
            sl.train.Saver([w]).restore(sess, str(tmp_path / "missing.ckpt"))
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        bad = str(tmp_path / "bad.ckpt")
        with open(bad, "wb") as f:
            f.write(bytes(data))
        with pytest.raises(sl.errors.DataLossError):
            sl.train.Saver([w]).restore(sess, bad)
        for got, want in zip(sess.run([w, b]), before):
            np.testing.assert_array_equal(got, want)
        sl.train.Saver([w]).restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), np.full((3, 1), 7.0))
        np.testing.assert_array_equal(sess.run(b), before[1])


def test_saving_an_uninitialized_variable_fails(tmp_path):
    g, _, _, _, _, _, (w, _) = _model()
    with sl.Session(graph=g) as sess:
        with pytest.raises(sl.errors.OpError, match="'w'"):
            sl.train.Saver([w]).save(sess, str(tmp_path / "x.ckpt"))
    with pytest.raises(TypeError):
        sl.train.Saver([1.0])
