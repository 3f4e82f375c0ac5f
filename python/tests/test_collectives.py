"""Collectives (ring all-reduce, reduce-scatter, all-gather, broadcast) against numpy, for 2, 3
and 4 members of a real four-worker LocalCluster and in process: odd sizes, 0-d and empty
tensors, each member's result on its own device, and the bytes the ring moves."""

import re

import numpy as np
import pytest

import sluice as sl
from cluster_faults import kill_mid_step, until_rejoined

RNG = np.random.default_rng(5)
DEVICES = ["/job:worker/task:%d" % i for i in range(4)]


@pytest.fixture(scope="module")
def cluster():
    with sl.LocalCluster(workers=4) as c:
        yield c


def members(values, n):
    """Placeholders fed `values`, each read through an op on its member's device."""
    phs, ts = [], []
    for i in range(n):
        ph = sl.placeholder(sl.as_dtype(values[i].dtype), values[i].shape)
        with sl.device(DEVICES[i]):
            ts.append(sl.identity(ph))
        phs.append(ph)
    return phs, ts


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("shape", [(5, 3), (7,), (), (0, 3), (2,)])
@pytest.mark.parametrize("algorithm", ["ring", "recursive_doubling"])
def test_all_reduce_against_numpy(cluster, n, shape, algorithm):
    values = [RNG.normal(size=shape).astype(np.float32) for _ in range(n)]
    g = sl.Graph()
    with g.as_default():
        phs, ts = members(values, n)
        outs = {op: sl.collective.all_reduce(ts, op=op, algorithm=algorithm)
                for op in ("sum", "mean", "max")}
    for o in outs["sum"]:
        assert o.op.device in DEVICES[:n]
    assert [o.op.device for o in outs["sum"]] == DEVICES[:n]  # Each on its member.
    feed = dict(zip(phs, values))
    expected = {"sum": np.sum(values, axis=0), "mean": np.mean(values, axis=0),
                "max": np.max(values, axis=0)}
    for target in (cluster.target, ""):
        with sl.Session(target, graph=g) as sess:
            got = sess.run(outs, feed)
        for op in outs:
            for member in got[op]:
                assert np.shape(member) == shape
                np.testing.assert_allclose(member, expected[op], rtol=1e-5, atol=1e-6)
                np.testing.assert_array_equal(member, got[op][0])  # Same bits everywhere.


@pytest.mark.parametrize("n", [2, 3, 4])
def test_reduce_scatter_all_gather_broadcast(cluster, n):
    values = [RNG.normal(size=(7, 2)) for _ in range(n)]  # 14 elements: uneven chunks for 3, 4
    rows = [RNG.normal(size=(i + 1, 2)) for i in range(n)]  # Different first dimensions.
    g = sl.Graph()
    with g.as_default():
        phs, ts = members(values, n)
        rphs, rts = members(rows, n)
        scattered = sl.collective.reduce_scatter(ts, op="sum")
        gathered = sl.collective.all_gather(rts)
        with sl.device(DEVICES[n - 1]):
            root_value = sl.identity(phs[n - 1]) * 2.0
        copies = sl.collective.broadcast(root_value, DEVICES[:n], root=n - 1)
    feed = dict(zip(phs + rphs, values + rows))
    with sl.Session(cluster.target, graph=g) as sess:
        got_s, got_g, got_b = sess.run([scattered, gathered, copies], feed)
    flat = np.sum(values, axis=0).ravel()
    chunks = np.array_split(flat, n)  # numpy's rule: the first chunks one element longer
    for i in range(n):
        np.testing.assert_allclose(got_s[i], chunks[i], rtol=1e-12)
        np.testing.assert_array_equal(got_g[i], np.concatenate(rows))
        np.testing.assert_array_equal(got_b[i], values[n - 1] * 2.0)


def test_the_ring_sends_two_n_minus_one_over_n_of_the_tensor_per_member(graph):
    # Count the bytes crossing devices in the graph: every edge between members is one Send.
    n, size = 4, 1000
    x = [sl.placeholder(sl.float32, [size]) for _ in range(n)]
    ts = []
    for i in range(n):
        with sl.device(DEVICES[i]):
            ts.append(sl.identity(x[i]))
    outs = sl.collective.all_reduce(ts, algorithm="ring")
    sent, _ = cross_device_traffic(graph)
    for d in DEVICES:
        assert sent[d] == 2 * (n - 1) * size // n * 4  # 2(n-1)/n * S bytes
    assert len(outs) == n


def cross_device_traffic(graph):
    """Bytes each device sends, and the longest chain of cross-device hops to any node."""
    sent = {d: 0 for d in DEVICES}
    depth = {}
    for op in graph.get_operations():  # Creation order is a topological order.
        hops = 0
        for t in op.inputs:
            crossing = t.op.device in sent and op.device in sent and t.op.device != op.device
            if crossing:
                sent[t.op.device] += int(np.prod(t.shape)) * 4
            hops = max(hops, depth.get(t.op.name, 0) + int(crossing))
        depth[op.name] = hops
    return sent, max(depth.values())


@pytest.mark.parametrize("n,rounds", [(2, 1), (3, 2), (4, 2)])
def test_recursive_doubling_takes_log_n_hops_of_the_whole_tensor(graph, n, rounds):
    size = 1000
    ts = []
    for i in range(n):
        with sl.device(DEVICES[i]):
            ts.append(sl.identity(sl.placeholder(sl.float32, [size])))
    sl.collective.all_reduce(ts, algorithm="recursive_doubling")
    sent, hops = cross_device_traffic(graph)
    # 3 members: member 0 hands its tensor to 1 while 2 sends to 1; 1 then sends the sum on
    # to 2 and 0 at once: two hops on the longest path.
    assert hops == rounds
    if n == 3:
        assert [sent[d] for d in DEVICES[:3]] == [size * 4, 2 * size * 4, size * 4]
    else:
        assert all(sent[d] == rounds * size * 4 for d in DEVICES[:n])


def test_ring_hops_and_the_cost_models_choice(graph):
    ts = []
    for i in range(4):
        with sl.device(DEVICES[i]):
            ts.append(sl.identity(sl.placeholder(sl.float32, [1000])))
    sl.collective.all_reduce(ts, algorithm="ring")
    assert cross_device_traffic(graph)[1] == 6  # 2(n - 1) hops
    # Two members: recursive doubling sends as many bytes in one hop instead of two.
    assert sl.collective.choose_algorithm(64 << 20, 2) == "recursive_doubling"
    # More members: latency decides for small tensors, bytes for big ones (docs/collectives.md).
    for n in (3, 4):
        assert sl.collective.choose_algorithm(4 << 10, n) == "recursive_doubling"
        assert sl.collective.choose_algorithm(64 << 20, n) == "ring"
    with pytest.raises(sl.errors.InvalidArgumentError, match="'tree' is not one of auto, ring"):
        sl.collective.all_reduce(ts, algorithm="tree")


@pytest.mark.parametrize("n", [2, 3])
def test_all_reduce_in_buckets_against_numpy(cluster, n):
    # Gradient-like lists: mixed shapes and a float64 tensor that must start its own bucket.
    shapes = [(3, 4), (5,), (), (2, 2, 2), (0,), (40,)]
    dtypes = [np.float32] * 4 + [np.float32, np.float64]
    values = [[RNG.normal(size=s).astype(t) for s, t in zip(shapes, dtypes)] for _ in range(n)]
    g = sl.Graph()
    with g.as_default():
        phs, lists = [], []
        for i in range(n):
            mine = []
            for v in values[i]:
                ph = sl.placeholder(sl.as_dtype(v.dtype), v.shape)
                phs.append(ph)
                with sl.device(DEVICES[i]):
                    mine.append(sl.identity(ph))
            lists.append(mine)
        out, buckets = sl.collective.all_reduce_in_buckets(lists, op="mean", bucket_bytes=50,
                                                           return_buckets=True)
    # 48 bytes (+ 20 > 50), then 20 + 4 (+ 32 > 50), then 32 + 0, then the float64 alone.
    assert buckets == [[0], [1, 2], [3, 4], [5]]
    feed = dict(zip(phs, [v for member in values for v in member]))
    with sl.Session(cluster.target, graph=g) as sess:
        got = sess.run(out, feed)
    for i in range(n):
        assert [t.op.device for t in out[i]] == [DEVICES[i]] * len(shapes)
        for k in range(len(shapes)):
            expected = np.mean([values[j][k] for j in range(n)], axis=0)
            assert got[i][k].shape == shapes[k] and got[i][k].dtype == dtypes[k]
            np.testing.assert_allclose(got[i][k], expected, rtol=1e-5, atol=1e-6)


def test_bad_groups_are_named(graph):
    with sl.device(DEVICES[0]):
        a = sl.zeros([3])
        c = sl.zeros([3], dtype=sl.int32)
    with sl.device(DEVICES[1]):
        b = sl.zeros([4])
    with pytest.raises(sl.errors.InvalidArgumentError, match=r"input 1 .* does not match input 0"):
        sl.collective.all_reduce([a, b])
    with pytest.raises(sl.errors.InvalidArgumentError, match="are both on /job:worker/task:0"):
        sl.collective.all_reduce([a, a])
    with pytest.raises(sl.errors.InvalidArgumentError, match="reduces float32 or float64"):
        sl.collective.all_reduce([c], devices=[DEVICES[0]])
    with pytest.raises(sl.errors.InvalidArgumentError, match="'median' is not one of"):
        sl.collective.all_reduce([a], op="median")
    with pytest.raises(ValueError, match="needs a device"):
        sl.collective.all_reduce([sl.zeros([3]), a])



def test_large_all_reduces_between_workers_keep_finishing(cluster):
    # 32 MiB per member: each ring hop's tensor outgrows the transport's flow-control windows,
    # so a Send blocks until the peer reads. Two workers all-reducing 64 MiB once deadlocked from
    # their second step (each data-plane reader ran the next hop's Send); docs/benchmarks.md.
    n, size = 2, 8 << 20
    g = sl.Graph()
    with g.as_default():
        ts = []
        for i in range(n):
            with sl.device(DEVICES[i]):
                ts.append(sl.ones([size]) * float(i + 1))
        outs = sl.collective.all_reduce(ts)
        extremes = []
        for i, o in enumerate(outs):
            with sl.device(DEVICES[i]):
                extremes.append(sl.stack([sl.reduce_min(o), sl.reduce_max(o)]))
    with sl.Session(cluster.target, graph=g) as sess:
        for _ in range(4):
            for member in sess.run(extremes):
                np.testing.assert_array_equal(member, [3.0, 3.0])


@pytest.mark.parametrize("algorithm", ["ring", "recursive_doubling"])
def test_a_worker_killed_mid_all_reduce_fails_the_step_naming_it_and_a_restart_works(algorithm):
    """Worker 2's share comes from a long chain of matrix products, so workers 0 and 1 are
    inside the all-reduce, waiting for it, when it is killed."""
    with sl.LocalCluster(workers=3) as cluster:
        g = sl.Graph()
        with g.as_default():
            ts = []
            for i in range(3):
                with sl.device(DEVICES[i]):
                    ts.append(sl.ones([1000]) * float(i + 1))
            with sl.device(DEVICES[2]):
                seed = sl.random_normal([384, 384], stddev=1.0 / 384, seed=3)
                heavy = seed
                for _ in range(600):
                    heavy = sl.tanh(sl.matmul(heavy, seed))
                ts[2] = ts[2] + 0.0 * sl.reduce_sum(heavy)
            outs = sl.collective.all_reduce(ts, algorithm=algorithm)
        config = sl.ConfigProto(step_timeout_seconds=60)
        with sl.Session(cluster.target, graph=g, config=config) as sess:
            np.testing.assert_array_equal(sess.run(outs[0]), np.full(1000, 6.0))
            error, seconds = kill_mid_step(cluster, 2, lambda: sess.run(outs))
            assert isinstance(error, sl.errors.UnavailableError), error
            assert re.search(r"failed: lost /job:worker/task:2 at .*\(/job:worker/task:2 was a "
                             r"member of collective 'AllReduce'\)$", str(error)), error
            assert seconds < 10  # The heartbeat bound, not the deadline.
            cluster.restart_worker(2)
            got = until_rejoined(lambda: sess.run(outs))
            for member in got:
                np.testing.assert_array_equal(member, np.full(1000, 6.0))
