"""Collectives (ring all-reduce, reduce-scatter, all-gather, broadcast) against numpy, for 2, 3
and 4 members of a real four-worker LocalCluster and in process: odd sizes, 0-d and empty
tensors, each member's result on its own device, and the bytes the ring moves."""

import numpy as np
import pytest

import sluice as sl

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
def test_all_reduce_against_numpy(cluster, n, shape):
    values = [RNG.normal(size=shape).astype(np.float32) for _ in range(n)]
    g = sl.Graph()
    with g.as_default():
        phs, ts = members(values, n)
        outs = {op: sl.collective.all_reduce(ts, op=op) for op in ("sum", "mean", "max")}
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
    outs = sl.collective.all_reduce(ts)
    sent = {d: 0 for d in DEVICES}
    for op in graph.get_operations():
        for t in op.inputs:
            if t.op.device in sent and op.device in sent and t.op.device != op.device:
                sent[t.op.device] += int(np.prod(t.shape)) * 4
    for d in DEVICES:
        assert sent[d] == 2 * (n - 1) * size // n * 4  # 2(n-1)/n * S bytes
    assert len(outs) == n


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
