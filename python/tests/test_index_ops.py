"""Indexing and shape ops against numpy, with gradients against finite differences: gather
(any axis), gather_nd, scatter_nd, unsorted_segment_sum, one_hot, tile, pad, in_top_k,
embedding_lookup (one tensor and mod/div shards), scatter_add/sub/update on variables, batched
matmul, clip_by_norm and clip_by_global_norm, random_shuffle and set_random_seed, TensorShape."""

import numpy as np
import pytest

import sluice as sl
from gradcheck import gradient_error

RNG = np.random.default_rng(41)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_matches_numpy_take_with_gradient(graph, sess, axis):
    params = RNG.normal(size=(4, 3, 5))
    indices = np.array([[2, 0], [2, 1]], dtype=np.int32) % params.shape[axis]
    got = sess.run(sl.gather(params, indices, axis=axis))
    np.testing.assert_array_equal(got, np.take(params, indices, axis=axis))
    assert sl.gather(params, indices, axis=axis).shape == np.take(params, indices, axis).shape
    # Repeated indices: their gradients add up.
    err = gradient_error(sess, lambda p: sl.gather(p, indices, axis=axis), [params])
    assert err < 1e-6


def test_gather_refuses_an_index_out_of_range(graph, sess):
    params = np.arange(6.0).reshape(3, 2)
    idx = sl.placeholder(sl.int32, shape=[2])
    y = sl.gather(params, idx)
    np.testing.assert_array_equal(sess.run(y, {idx: [2, 0]}), params[[2, 0]])
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"indices\[1\] = 3 is not in \[0, 3\)"):
        sess.run(y, {idx: [0, 3]})
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"indices\[0\] = -1"):
        sess.run(y, {idx: [-1, 0]})


def test_gather_nd_and_scatter_nd(graph, sess):
    params = RNG.normal(size=(3, 4, 2))
    idx = np.array([[[0, 1], [2, 3]], [[1, 0], [0, 1]]], dtype=np.int64)  # Tuples of length 2.
    got = sess.run(sl.gather_nd(params, idx))
    np.testing.assert_array_equal(got, params[idx[..., 0], idx[..., 1]])
    whole = sess.run(sl.gather_nd(params, np.array([[2], [0]])))  # Length-1 tuples: rows.
    np.testing.assert_array_equal(whole, params[[2, 0]])
    err = gradient_error(sess, lambda p: sl.gather_nd(p, idx), [params])
    assert err < 1e-6
    updates = RNG.normal(size=(2, 2, 2))
    scattered = sess.run(sl.scatter_nd(idx, updates, [3, 4, 2]))
    expected = np.zeros((3, 4, 2))
    np.add.at(expected, (idx[..., 0], idx[..., 1]), updates)  # [0, 1] appears twice: adds.
    np.testing.assert_allclose(scattered, expected)
    assert gradient_error(sess, lambda u: sl.scatter_nd(idx, u, [3, 4, 2]), [updates]) < 1e-6
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"index \[3,0\] .*out of bounds"):
        sess.run(sl.gather_nd(params, np.array([[3, 0]])))


def test_unsorted_segment_sum_with_gradient(graph, sess):
    data = RNG.normal(size=(5, 3))
    ids = np.array([2, 0, 2, 3, 0], dtype=np.int32)
    expected = np.zeros((4, 3))
    np.add.at(expected, ids, data)
    np.testing.assert_allclose(sess.run(sl.unsorted_segment_sum(data, ids, 4)), expected)
    assert gradient_error(sess, lambda d: sl.unsorted_segment_sum(d, ids, 4), [data]) < 1e-6
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"segment_ids\[3\] = 3 is not in"):
        sess.run(sl.unsorted_segment_sum(data, ids, 3))


def test_one_hot(graph, sess):
    labels = np.array([1, 0, 3, 7, -1], dtype=np.int64)
    got = sess.run(sl.one_hot(labels, 4))
    expected = np.zeros((5, 4), np.float32)
    for i, v in enumerate(labels):
        if 0 <= v < 4:
            expected[i, v] = 1
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)  # 7 and -1: rows of zeros, as in TF.
    first = sess.run(sl.one_hot(np.array([[0, 2]], np.int32), 3, on_value=5, off_value=-1,
                                axis=0))
    assert first.dtype == np.int32 and first.shape == (3, 1, 2)
    np.testing.assert_array_equal(first[:, 0, :], [[5, -1], [-1, -1], [-1, 5]])
    assert sl.one_hot(sl.placeholder(sl.int32, [None]), 10).shape == (None, 10)


@pytest.mark.parametrize("shape,multiples", [((2, 3), [2, 1]), ((2, 1, 3), [1, 3, 2]),
                                             ((3,), [4]), ((2, 2), [0, 2])])
def test_tile_with_gradient(graph, sess, shape, multiples):
    x = RNG.normal(size=shape)
    np.testing.assert_array_equal(sess.run(sl.tile(x, multiples)), np.tile(x, multiples))
    assert gradient_error(sess, lambda t: sl.tile(t, multiples), [x]) < 1e-6


def test_tile_refuses_bad_multiples(graph, sess):
    m = sl.placeholder(sl.int32, [None])
    with pytest.raises(sl.errors.InvalidArgumentError, match="multiples must be a vector of 2"):
        sess.run(sl.tile(np.ones((2, 2)), m), {m: [1, 2, 3]})


@pytest.mark.parametrize("paddings", [[[1, 2], [0, 3]], [[0, 0], [2, 0]], [[3, 1], [1, 1]]])
def test_pad_with_gradient(graph, sess, paddings):
    x = RNG.normal(size=(2, 3))
    np.testing.assert_array_equal(sess.run(sl.pad(x, paddings)), np.pad(x, paddings))
    np.testing.assert_array_equal(sess.run(sl.pad(x, paddings, constant_values=7.5)),
                                  np.pad(x, paddings, constant_values=7.5))
    assert gradient_error(sess, lambda t: sl.pad(t, paddings), [x]) < 1e-6


def test_pad_of_images_and_refusals(graph, sess):
    x = np.arange(2 * 2 * 2 * 1, dtype=np.int32).reshape(2, 2, 2, 1)
    p = [[0, 0], [1, 1], [2, 0], [0, 0]]
    np.testing.assert_array_equal(sess.run(sl.pad(x, p)), np.pad(x, p))
    with pytest.raises(NotImplementedError, match="REFLECT"):
        sl.pad(x, p, mode="REFLECT")
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"paddings must have shape \[4, 2\]"):
        sl.pad(x, [[1, 1]])
    with pytest.raises(sl.errors.InvalidArgumentError, match="must be non-negative"):
        sl.pad(x, [[0, 0], [-1, 0], [0, 0], [0, 0]])


def test_in_top_k_counts_ties_as_in(graph, sess):
    pred = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.3], [0.9, 0.05, 0.05], [1.0, np.nan, 0.0]],
                    np.float32)
    targets = np.array([2, 1, 1, 1], np.int32)
    np.testing.assert_array_equal(sess.run(sl.nn.in_top_k(pred, targets, 1)),
                                  [False, True, False, False])
    np.testing.assert_array_equal(sess.run(sl.nn.in_top_k(pred, targets, 2)),
                                  [True, True, True, False])
    # Accuracy as the tutorials compute it.
    acc = sl.reduce_mean(sl.cast(sl.nn.in_top_k(pred, np.array([1, 0, 0, 0], np.int32), 1),
                                 sl.float32))
    assert sess.run(acc) == pytest.approx(1.0)


def test_embedding_lookup_single_and_sharded(graph, sess):
    table = RNG.normal(size=(10, 3))
    ids = np.array([[7, 0, 3], [9, 9, 4]], np.int64)
    np.testing.assert_array_equal(sess.run(sl.nn.embedding_lookup(table, ids)), table[ids])
    # mod: id i lives in shard i % 3 at row i // 3.
    mod_shards = [table[p::3] for p in range(3)]
    got = sess.run(sl.nn.embedding_lookup([sl.constant(s) for s in mod_shards], ids))
    np.testing.assert_allclose(got, table[ids])
    # div: 10 rows over 3 shards are 4, 3, 3 contiguous rows.
    div_shards = [table[0:4], table[4:7], table[7:10]]
    got = sess.run(sl.nn.embedding_lookup([sl.constant(s) for s in div_shards], ids,
                                          partition_strategy="div"))
    np.testing.assert_allclose(got, table[ids])
    # The gradient reaches exactly the looked-up rows, each once per lookup.
    shards = [sl.constant(s) for s in mod_shards]
    loss = sl.reduce_sum(sl.nn.embedding_lookup(shards, ids))
    grads = sess.run(sl.gradients(loss, shards))
    counts = np.bincount(ids.ravel(), minlength=10)
    for p in range(3):
        np.testing.assert_allclose(grads[p], np.repeat(counts[p::3, None], 3, axis=1))
    clipped = sess.run(sl.nn.embedding_lookup(table, ids, max_norm=0.5))
    norms = np.linalg.norm(table[ids], axis=-1, keepdims=True)
    np.testing.assert_allclose(clipped, table[ids] * 0.5 / np.maximum(norms, 0.5), rtol=1e-12)


def test_scatter_updates_on_variables(graph, sess):
    v = sl.Variable(np.arange(12.0).reshape(4, 3))
    add = sl.scatter_add(v, [1, 3, 1], np.ones((3, 3)))
    sub = sl.scatter_sub(v, np.array([0], np.int64), [[1.0, 2.0, 3.0]])
    upd = sl.scatter_update(v, [2], [[-1.0, -2.0, -3.0]])
    sess.run(sl.global_variables_initializer())
    expected = np.arange(12.0).reshape(4, 3)
    out = sess.run(add)
    expected[1] += 2
    expected[3] += 1
    np.testing.assert_array_equal(out, expected)
    sess.run(sub)
    expected[0] -= [1, 2, 3]
    sess.run(upd)
    expected[2] = [-1, -2, -3]
    np.testing.assert_array_equal(sess.run(v), expected)
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"indices\[0\] = 4 is not a row of variable"):
        sess.run(sl.scatter_add(v, [4], np.ones((1, 3))))
    with pytest.raises(sl.errors.InvalidArgumentError, match="updates of shape"):
        sess.run(sl.scatter_add(v, [0], np.ones((1, 2))))


@pytest.mark.parametrize("a_shape,b_shape,ta,tb", [
    ((2, 3, 4), (2, 4, 5), False, False),
    ((2, 4, 3), (2, 4, 5), True, False),
    ((3, 2, 3, 4), (4, 5), False, False),     # b broadcast over both batch dimensions.
    ((1, 3, 4), (2, 5, 4), False, True),      # a's batch of one broadcast.
    ((2, 1, 4, 3), (3, 5, 4), True, True),
])
def test_batched_matmul_with_gradient(graph, sess, a_shape, b_shape, ta, tb):
    a, b = RNG.normal(size=a_shape), RNG.normal(size=b_shape)
    op_a = np.swapaxes(a, -1, -2) if ta else a
    op_b = np.swapaxes(b, -1, -2) if tb else b
    np.testing.assert_allclose(sess.run(sl.matmul(a, b, transpose_a=ta, transpose_b=tb)),
                               np.matmul(op_a, op_b), rtol=1e-12)
    err = gradient_error(sess, lambda x, y: sl.matmul(x, y, adjoint_a=ta, adjoint_b=tb), [a, b])
    assert err < 1e-6


def test_batched_matmul_refuses_mismatched_shapes(graph):
    with pytest.raises(sl.errors.InvalidArgumentError, match="inner dimensions differ"):
        sl.matmul(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(sl.errors.InvalidArgumentError, match="do not broadcast"):
        sl.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 4)))


def test_clip_by_norm_and_global_norm(graph, sess):
    t = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(sess.run(sl.clip_by_norm(t, 2.0)), t * 2.0 / 5.0)
    np.testing.assert_allclose(sess.run(sl.clip_by_norm(t, 10.0)), t)
    rows = sess.run(sl.clip_by_norm(t, 1.0, axes=[1]))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])  # A zero row stays zero.
    x = sl.placeholder(sl.float64, [2, 2])
    g = sess.run(sl.gradients(sl.reduce_sum(sl.clip_by_norm(x, 1.0, axes=[1])), [x])[0],
                 {x: t})
    assert np.all(np.isfinite(g))
    a, b = np.array([1.0, 2.0]), np.array([[2.0], [4.0]])
    norm = np.sqrt(1 + 4 + 4 + 16)
    clipped, gnorm = sl.clip_by_global_norm([a, None, b], 2.5)
    assert clipped[1] is None
    ca, cb, gn = sess.run([clipped[0], clipped[2], gnorm])
    assert gn == pytest.approx(norm)
    np.testing.assert_allclose(ca, a * 2.5 / norm)
    np.testing.assert_allclose(cb, b * 2.5 / norm)
    assert sess.run(sl.global_norm([a, b])) == pytest.approx(norm)


def test_random_shuffle_permutes_rows_reproducibly(graph):
    x = np.arange(20).reshape(10, 2)
    y = sl.random_shuffle(x, seed=5)
    with sl.Session() as s1, sl.Session() as s2:
        a1, a2 = s1.run(y), s1.run(y)
        b1 = s2.run(y)
    for a in (a1, a2):
        assert sorted(a[:, 0].tolist()) == list(range(0, 20, 2))  # A permutation of the rows.
        np.testing.assert_array_equal(a[:, 1], a[:, 0] + 1)       # Rows moved whole.
    np.testing.assert_array_equal(a1, b1)  # Same seed, fresh session: same order.
    assert not np.array_equal(a1, a2)      # Each run continues the stream.


def test_random_shuffle_is_uniform_over_permutations(graph, sess):
    y = sl.random_shuffle(np.arange(3), seed=11)
    counts = {}
    for _ in range(600):
        key = tuple(sess.run(y))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    # 100 expected per permutation; binomial standard deviation about 9.1.
    assert all(55 < c < 145 for c in counts.values()), counts


def test_set_random_seed_makes_unseeded_ops_reproducible():
    def draw():
        g = sl.Graph()
        with g.as_default():
            sl.set_random_seed(1234)
            a = sl.random_normal([4])
            b = sl.random_normal([4])
            with sl.Session(graph=g) as s:
                return s.run([a, b])

    (a1, b1), (a2, b2) = draw(), draw()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)  # Different ops, different streams.
    g = sl.Graph()
    with g.as_default():
        c = sl.random_normal([4])  # No graph seed: a fresh random stream.
        with sl.Session(graph=g) as s:
            assert not np.array_equal(s.run(c), a1)


def test_tensor_shape_as_tf1_programs_use_it(graph):
    x = sl.placeholder(sl.float32, [None, 784])
    assert x.get_shape().as_list() == [None, 784]
    assert x.shape == (None, 784) and x.shape == [None, 784]
    assert x.get_shape()[1].value == 784 and int(x.shape[1]) == 784
    assert x.shape.ndims == 2 and not x.shape.is_fully_defined()
    unknown = sl.placeholder(sl.float32)
    assert unknown.shape is None
    assert unknown.get_shape().ndims is None
    with pytest.raises(ValueError, match="unknown rank"):
        unknown.get_shape().as_list()
    s = sl.TensorShape([2, None, 3])
    assert s.num_elements() is None and sl.TensorShape([2, 3]).num_elements() == 6
    assert s.is_compatible_with([2, 5, 3]) and not s.is_compatible_with([2, 5])
    assert s[1:] == [None, 3]
    y = sl.placeholder(sl.float32, shape=sl.TensorShape([None, 3]))
    assert y.shape == (None, 3)
    w = sl.Variable(np.zeros((4, 2), np.float32))
    assert w.get_shape().as_list() == [4, 2]


def test_sgd_on_an_embedding_updates_only_the_looked_up_rows(graph, sess):
    """GradientDescent applies the gradient of gathered rows as a row update (ScatterSub of
    lr * values at the indices); the dense gradient node is built but left unused."""
    table0 = RNG.normal(size=(6, 3)).astype(np.float32)
    table = sl.Variable(table0)
    ids = sl.placeholder(sl.int32, [None])
    target = sl.placeholder(sl.float32, [None, 3])
    loss = sl.reduce_sum(sl.square(sl.nn.embedding_lookup(table, ids) - target))
    train = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
    scatters = [op for op in graph.get_operations() if op.type == "ScatterSub"]
    assert len(scatters) == 1
    dense = [op for op in graph.get_operations() if op.type == "GatherGrad"]
    assert len(dense) == 1 and not dense[0].outputs[0].consumers()
    sess.run(sl.global_variables_initializer())
    id_values = np.array([4, 1, 4], np.int32)  # Row 4 twice: both gradients apply.
    t = RNG.normal(size=(3, 3)).astype(np.float32)
    sess.run(train, {ids: id_values, target: t})
    expected = table0.copy()
    grad = np.zeros_like(table0)
    np.add.at(grad, id_values, 2 * (table0[id_values] - t))
    expected -= 0.1 * grad
    got = sess.run(table)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(got[untouched], table0[untouched])


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adagrad"])
def test_momentum_and_adagrad_on_an_embedding_update_only_the_looked_up_rows(graph, sess, name):
    """Momentum and Adagrad apply the gradient of gathered rows as a sparse update
    (SparseApplyMomentum, SparseApplyAdagrad, TF's): a repeated id's rows are summed, the
    looked-up rows get the dense update's values and the other rows and their accumulators
    stay as they are."""
    table0 = RNG.normal(size=(6, 3))
    table = sl.Variable(table0)
    ids = sl.placeholder(sl.int32, [None])
    target = sl.placeholder(sl.float64, [None, 3])
    loss = sl.reduce_sum(sl.square(sl.nn.embedding_lookup(table, ids) - target))
    lr, mu = 0.1, 0.9
    optimizer = {"momentum": sl.train.MomentumOptimizer(lr, mu),
                 "nesterov": sl.train.MomentumOptimizer(lr, mu, use_nesterov=True),
                 "adagrad": sl.train.AdagradOptimizer(lr, initial_accumulator_value=0.1)}[name]
    train = optimizer.minimize(loss)
    sparse = "SparseApplyAdagrad" if name == "adagrad" else "SparseApplyMomentum"
    assert [op.type for op in graph.get_operations() if "Apply" in op.type] == [sparse]
    sess.run(sl.global_variables_initializer())
    w, acc = table0.copy(), np.full_like(table0, 0.0 if name != "adagrad" else 0.1)
    for id_values in (np.array([4, 1, 4], np.int32), np.array([1, 2], np.int32)):
        t = RNG.normal(size=(len(id_values), 3))
        sess.run(train, {ids: id_values, target: t})
        grad = np.zeros_like(w)
        np.add.at(grad, id_values, 2 * (w[id_values] - t))
        rows = np.unique(id_values)
        if name == "adagrad":
            acc[rows] += grad[rows] ** 2
            w[rows] -= lr * grad[rows] / np.sqrt(acc[rows])
        else:
            acc[rows] = mu * acc[rows] + grad[rows]
            step = grad[rows] + mu * acc[rows] if name == "nesterov" else acc[rows]
            w[rows] -= lr * step
    got = sess.run(table)
    np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got[[0, 3, 5]], table0[[0, 3, 5]])
