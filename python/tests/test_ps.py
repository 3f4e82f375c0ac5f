"""Parameter-server pulls and pushes (sl.ps) under fixed schedules of pulls and pushes, every
rule against an independent numpy implementation of its equation (TRAINING.md section 3):
delays of 0, 1 and several, DC-ASGD with lambda > 0 and two workers pulling at different
times (one backup per worker), lambda = 0 equal to ASGD, AdaDelay's step sizes, Hogwild
sequentially equal to ASGD, the delay histogram, and the errors."""

import functools
import threading
import time

import numpy as np
import pytest

import sluice as sl

RNG = np.random.default_rng(11)
SHARDS = [(RNG.normal(size=(5, 3)), RNG.normal(size=(5, 1))) for _ in range(3)]
W0 = np.array([[0.3], [-0.2], [0.1]])
F32 = lambda v: float(np.float32(v))  # noqa: E731  Hyper-parameters are float attributes.


def gradient(m, w):
    x, y = SHARDS[m % len(SHARDS)]
    return 2.0 * x.T @ (x @ w - y) / len(x)


class Reference:
    """The ps of ops/ps_ops.h in numpy: clock, pull clocks, backups, mean square."""

    def __init__(self, rule, lr=0.1, lam=0.0, mu=0.95, eps=1e-7, beta=1.0):
        self.rule, self.lr, self.lam = rule, F32(lr), F32(lam)
        self.mu, self.eps, self.beta = F32(mu), F32(eps), F32(beta)
        self.w, self.clock, self.pulled, self.backup = W0.copy(), 0, {}, {}
        self.ms = np.zeros_like(W0)
        self.delays = []

    def pull(self, m):
        self.pulled[m] = self.clock
        self.backup[m] = self.w.copy()
        return self.w.copy()

    def push(self, m, g):
        tau = self.clock - self.pulled.get(m, 0)
        if self.rule in ("asgd", "hogwild"):
            self.w = self.w - self.lr * g
        elif self.rule == "adadelay":
            self.w = self.w - self.lr / (self.beta + np.sqrt(self.clock + tau)) * g
        else:
            lam = self.lam
            if self.rule == "dc_asgd_a":
                self.ms = self.mu * self.ms + (1 - self.mu) * g * g
                lam = self.lam / np.sqrt(self.ms + self.eps)
            self.w = self.w - self.lr * (g + lam * g * g * (self.w - self.backup.get(m, self.w)))
        self.clock += 1
        self.delays.append(tau)
        return tau


class Workers:
    """One graph, one in-process session: worker m's pull, and its push of the gradient of its
    shard's loss at the value it pulled (fed back, so the push does not pull again)."""

    def __init__(self, rule, n=3, shards=None, logistic=False, **hyper):
        shards = shards or SHARDS
        self.graph = sl.Graph()
        with self.graph.as_default():
            self.w = sl.Variable(W0 if not logistic else np.zeros((shards[0][0].shape[1], 1)),
                                 name="w")
            self.pulls, self.leads, self.pushes = [], [], []
            for m in range(n):
                # Both outputs, so a push can feed the pulled value back (a multi-output node
                # is fed whole).
                w_m, lead = sl.ps.pull(self.w, worker=m, rule=rule, return_lead=True)
                self.leads.append(lead)
                x, y = shards[m % len(shards)]
                z = sl.matmul(sl.constant(x), w_m)
                loss = sl.reduce_mean(
                    sl.nn.sigmoid_cross_entropy_with_logits(labels=sl.constant(y), logits=z)
                    if logistic else sl.square(z - y))
                grad, = sl.gradients(loss, [w_m])
                self.pulls.append(w_m)
                self.pushes.append(sl.ps.push(self.w, grad, worker=m, rule=rule, **hyper))
            self.histogram = sl.ps.delays(self.w)
            init = sl.global_variables_initializer()
        self.sess = sl.Session(graph=self.graph)
        self.sess.run(init)
        self.held = {}

    def pull(self, m):
        self.held[m] = self.sess.run(self.pulls[m])
        return self.held[m]

    def push(self, m):
        return int(self.sess.run(self.pushes[m], {self.pulls[m]: self.held[m],
                                                  self.leads[m]: 0}))


# (event, worker) in order: delays 0 (pull then push at once), 1 and several.
SCHEDULE = [("pull", 0), ("push", 0),                  # tau 0
            ("pull", 0), ("pull", 1), ("push", 1),     # tau 0
            ("push", 0),                               # tau 1
            ("pull", 2), ("pull", 0), ("push", 0),     # tau 0
            ("pull", 1), ("push", 2),                  # tau 1
            ("push", 0), ("push", 1),                  # tau 2 (0 pushes again), tau 2
            ("pull", 2), ("push", 2)]                  # tau 0
DELAYS = [0, 0, 1, 0, 1, 2, 2, 0]

CASES = {
    "asgd": dict(learning_rate=0.1),
    "hogwild": dict(learning_rate=0.1),
    "dc_asgd": dict(learning_rate=0.1, lam=2.0),
    "dc_asgd_a": dict(learning_rate=0.1, lam=0.5, momentum=0.9, epsilon=1e-6),
    "adadelay": dict(learning_rate=0.5, beta=2.0),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_matches_its_equation_under_a_fixed_schedule(rule):
    hyper = CASES[rule]
    ours = Workers(rule, **hyper)
    ref = Reference(rule, lr=hyper["learning_rate"], lam=hyper.get("lam", 0.0),
                    mu=hyper.get("momentum", 0.95), eps=hyper.get("epsilon", 1e-7),
                    beta=hyper.get("beta", 1.0))
    held = {}
    got_delays = []
    for event, m in SCHEDULE:
        if event == "pull":
            held[m] = ref.pull(m)
            np.testing.assert_allclose(ours.pull(m), held[m], rtol=1e-12)
        else:
            want = ref.push(m, gradient(m, held[m]))
            got_delays.append(ours.push(m))
            assert got_delays[-1] == want
    assert got_delays == DELAYS == ref.delays
    np.testing.assert_allclose(ours.sess.run(ours.w), ref.w, rtol=1e-12)
    assert ours.sess.run(ours.histogram).tolist() == [4, 2, 2]  # Delays 0, 1, 2.


def test_dc_asgd_compensates_per_worker_and_lambda_zero_is_asgd():
    # Two workers pull at different clocks: with one backup per variable (MXNet's mistake) or
    # the worker's parameters overwritten by the global ones, the results below would differ.
    final = {}
    for rule, lam in (("dc_asgd", 2.0), ("dc_asgd", 0.0), ("asgd", 0.0)):
        ours = Workers(rule, learning_rate=0.1, lam=lam)
        for event, m in SCHEDULE:
            getattr(ours, event)(m)
        final[(rule, lam)] = ours.sess.run(ours.w)
    np.testing.assert_array_equal(final[("dc_asgd", 0.0)], final[("asgd", 0.0)])
    assert np.abs(final[("dc_asgd", 2.0)] - final[("asgd", 0.0)]).max() > 1e-6


def test_asgd_with_delay_zero_is_sgd():
    ours = Workers("asgd", n=1, learning_rate=0.1)
    w = W0.copy()
    for _ in range(5):
        ours.pull(0)
        assert ours.push(0) == 0
        w = w - F32(0.1) * gradient(0, w)
    np.testing.assert_allclose(ours.sess.run(ours.w), w, rtol=1e-12)


def test_adadelay_step_sizes_follow_the_formula_for_the_recorded_delays():
    ours = Workers("adadelay", learning_rate=0.5, beta=2.0)
    for event, m in SCHEDULE[:6]:
        getattr(ours, event)(m)
    before = ours.sess.run(ours.w)
    ours.pull(2)  # At clock 3.
    held = ours.held[2]
    ours.pull(0)
    ours.push(0)  # Clock 3 -> 4, tau 0.
    mid = ours.sess.run(ours.w)
    tau = ours.push(2)  # Pulled at 3, pushed at t = 4: tau 1.
    assert tau == 1
    step = F32(0.5) / (F32(2.0) + np.sqrt(4 + 1))
    np.testing.assert_allclose(ours.sess.run(ours.w), mid - step * gradient(2, held),
                               rtol=1e-12)
    assert not np.allclose(before, mid)


def test_hogwild_pushes_from_threads_all_count():
    ours = Workers("hogwild", n=3, learning_rate=0.01)
    for m in range(3):
        ours.pull(m)

    def pusher(m):
        for _ in range(50):
            ours.push(m)

    threads = [threading.Thread(target=pusher, args=(m,)) for m in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    histogram = ours.sess.run(ours.histogram)
    assert histogram.sum() == 150  # Every push counted: the clock is kept under a lock.
    assert np.all(np.isfinite(ours.sess.run(ours.w)))


def test_errors_name_the_variable_and_the_rule():
    g = sl.Graph()
    with g.as_default():
        w = sl.Variable(np.zeros(3), name="w")
        asgd = sl.ps.push(w, np.ones(3), worker=0, rule="asgd")
        dc = sl.ps.push(w, np.ones(3), worker=1, rule="dc_asgd")
        bad = sl.ps.push(w, np.ones(4), worker=0)
        init = sl.global_variables_initializer()
    with pytest.raises(ValueError, match="rule 'sgd' is not one of asgd"):
        with g.as_default():
            sl.ps.push(w, np.ones(3), worker=0, rule="sgd")
    with pytest.raises(TypeError, match="ps.pull needs a Variable"):
        sl.ps.pull(sl.constant(1.0), worker=0)
    with sl.Session(graph=g) as sess:
        with pytest.raises(sl.errors.FailedPreconditionError, match="'w' is not initialized"):
            sess.run(asgd)
        sess.run(init)
        sess.run(asgd)
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match="'w' is updated by rule 'asgd'; this push asks for 'dc_asgd'"):
            sess.run(dc)
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match=r"push to variable 'w' \(float64 \[3\]\) of a gradient "
                                 r"float64 \[4\]"):
            sess.run(bad)


class ClusterWorker:
    """Worker m's own graph on a cluster with a ps task: `w` on /job:ps/task:0 (shared by name
    with the other workers' graphs), pulled and differentiated on /job:worker/task:m, the
    gradient pushed back (ASGD)."""

    def __init__(self, m, learning_rate):
        self.graph = sl.Graph()
        with self.graph.as_default():
            with sl.device("/job:ps/task:0"):
                self.w = sl.Variable(W0, name="w")
            with sl.device("/job:worker/task:%d" % m):
                w_m = sl.ps.pull(self.w, worker=m)
                x, y = SHARDS[m]
                self.loss = sl.reduce_mean(sl.square(sl.matmul(sl.constant(x), w_m) - y))
                self.grad, = sl.gradients(self.loss, [w_m])
                self.pulled = sl.identity(w_m)
            self.push = sl.ps.push(self.w, self.grad, worker=m, learning_rate=learning_rate)
            self.init = sl.global_variables_initializer()
            self.histogram = sl.ps.delays(self.w)
            self.counters = sl.ps.counters(self.w)


def test_between_graph_workers_train_asynchronously_against_a_ps_task():
    """Two worker threads, each with its own graph and session on a cluster with a ps job (the
    variable shared by name on /job:ps/task:0), pull, compute on their own task and push
    without waiting for each other: every push is counted with its delay, every gradient is the
    one of the value its worker pulled, the ps applied each once, and the loss falls."""
    steps = 15
    lr = F32(0.05)
    with sl.LocalCluster(workers=2, ps=1) as cluster:
        assert cluster.num_ps == 1

        workers = [ClusterWorker(m, learning_rate=0.05) for m in range(2)]
        for m, w in enumerate(workers):
            assert w.w.op.device == "/job:ps/task:0" and w.push.op.device == "/job:ps/task:0"
            assert w.grad.op.device == "/job:worker/task:%d" % m
        sessions = [sl.Session(cluster.target, graph=w.graph) for w in workers]
        sessions[0].run(workers[0].init)  # The chief initialises the shared variable.
        first = [s.run(w.loss) for s, w in zip(sessions, workers)]
        pushes = [[], []]  # (delay, pulled value, gradient) of every push, per worker.

        def train(m):
            w = workers[m]
            for _ in range(steps):
                pushes[m].append(sessions[m].run([w.push, w.pulled, w.grad]))

        threads = [threading.Thread(target=train, args=(m,)) for m in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        histogram = sessions[0].run(workers[0].histogram)
        final = sessions[0].run(workers[0].w)
        last = [s.run(w.loss) for s, w in zip(sessions, workers)]
        for s in sessions:
            s.close()
    assert histogram.sum() == 2 * steps
    recorded = np.bincount([int(p[0]) for p in pushes[0] + pushes[1]], minlength=len(histogram))
    np.testing.assert_array_equal(histogram, recorded)
    for m in range(2):
        for _, pulled, grad in pushes[m]:
            np.testing.assert_allclose(grad, gradient(m, pulled), rtol=1e-12, atol=1e-12)
    # ASGD applies every push once, whatever the order: w = w0 - lr * (sum of all gradients).
    applied = W0 - lr * sum(p[2] for p in pushes[0] + pushes[1])
    np.testing.assert_allclose(final, applied, rtol=1e-12, atol=1e-12)
    # The threads may run one after the other (a worker's first step can take all of the
    # other's fifteen), and then the first worker's own loss rises again as the second trains on
    # its shard: the objective both share, the sum of their losses, falls in every order.
    assert sum(last) < sum(first)


def ssp_graph(n, staleness):
    g = sl.Graph()
    with g.as_default():
        w = sl.Variable(np.zeros(2), name="w")
        pulls = [sl.ps.pull(w, m, staleness=staleness, workers=n, return_lead=True)
                 for m in range(n)]
        pushes = [sl.ps.push(w, np.ones(2), m, learning_rate=1.0) for m in range(n)]
        pending = sl.ps.waiting(w)
        init = sl.global_variables_initializer()
    return g, w, pulls, pushes, pending, init


def wait_until(predicate, what):
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_bounded_staleness_holds_a_worker_until_the_slowest_catches_up():
    g, w, pulls, pushes, pending, init = ssp_graph(2, staleness=1)
    with sl.Session(graph=g) as sess:
        sess.run(init)
        for _ in range(2):  # Worker 0 pushes twice; worker 1 never yet.
            _, lead = sess.run(pulls[0])
            sess.run(pushes[0])
        assert lead == 1  # Its second pull came one push ahead of worker 1: the bound.
        result = {}
        reader = threading.Thread(target=lambda: result.update(got=sess.run(pulls[0])))
        reader.start()  # c0 = 2, slowest 0 < 2 - 1: waits.
        wait_until(lambda: sess.run(pending) == 1, "the pull never waited")
        assert reader.is_alive()
        sess.run(pulls[1])
        sess.run(pushes[1])  # Slowest is now 1 = 2 - 1: lets the waiting pull through.
        reader.join()
        value, lead = result["got"]
        np.testing.assert_array_equal(value, [-3.0, -3.0])  # After all three pushes.
        assert lead == 1 and sess.run(pending) == 0


@pytest.mark.parametrize("staleness", [0, 2])
def test_no_pull_ever_reads_past_its_bound(staleness):
    n, steps = 3, 12
    g, w, pulls, pushes, pending, init = ssp_graph(n, staleness)
    leads = [[] for _ in range(n)]
    with sl.Session(graph=g) as sess:
        sess.run(init)

        def train(m):
            for _ in range(steps):
                leads[m].append(int(sess.run(pulls[m])[1]))
                sess.run(pushes[m])

        threads = [threading.Thread(target=train, args=(m,)) for m in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        np.testing.assert_array_equal(sess.run(w), [-n * steps] * 2)
    assert all(0 <= lead <= staleness for per in leads for lead in per), leads


def test_a_waiting_pull_ends_with_its_step():
    with sl.LocalCluster(workers=1, ps=1) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:ps/task:0"):
                w = sl.Variable(np.zeros(2), name="w")
            pull = sl.ps.pull(w, 0, staleness=0, workers=2)
            push = sl.ps.push(w, np.ones(2), 0)
            pending = sl.ps.waiting(w)
            init = sl.global_variables_initializer()
        config = sl.ConfigProto(step_timeout_seconds=1)
        with sl.Session(cluster.target, graph=g, config=config) as sess:
            sess.run(init)
            sess.run(pull)
            sess.run(push)
            with pytest.raises(sl.errors.DeadlineExceededError):
                sess.run(pull)  # Worker 1 never pushes: lockstep holds worker 0.
            assert sess.run(pending) == 0  # The cancelled pull left the list.


def sync_graph(n, replicas):
    g = sl.Graph()
    with g.as_default():
        w = sl.Variable(W0, name="w")
        pulls, pushes = [], []
        leads = []
        for m in range(n):
            w_m, lead = sl.ps.pull(w, m, rule="sync", return_lead=True)
            leads.append(lead)
            x, y = SHARDS[m]
            loss = sl.reduce_mean(sl.square(sl.matmul(sl.constant(x), w_m) - y))
            grad, = sl.gradients(loss, [w_m])
            pulls.append(w_m)
            pushes.append(sl.ps.push(w, grad, m, rule="sync", learning_rate=0.1,
                                     replicas=replicas))
        counters = sl.ps.counters(w)
        init = sl.global_variables_initializer()
    g.leads = leads  # A pull is fed whole: its value and its lead.
    return g, w, pulls, pushes, counters, init


def test_synchronous_aggregation_equals_bsp_whatever_the_order():
    g, w, pulls, pushes, counters, init = sync_graph(2, replicas=2)
    want = W0.copy()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        for order in ([0, 1], [1, 0], [0, 1]):
            for m in order:  # Each push runs its own pull first, on the current version.
                sess.run(pushes[m])
            want = want - F32(0.1) * np.mean([gradient(m, want) for m in range(2)], axis=0)
            np.testing.assert_allclose(sess.run(w), want, rtol=1e-12)
        assert sess.run(counters).tolist() == [6, 3, 0, 0, 0]
        # Worker 0 has pushed for version 3; its next pull waits until worker 1's gradient
        # completes that version.
        sess.run(pushes[0])
        result = {}
        reader = threading.Thread(target=lambda: result.update(got=sess.run(pulls[0])))
        reader.start()
        wait_until(lambda: sess.run(counters)[3] == 1, "the pull never waited")
        sess.run(pushes[1])
        reader.join()
        want = want - F32(0.1) * np.mean([gradient(m, want) for m in range(2)], axis=0)
        np.testing.assert_allclose(result["got"], want, rtol=1e-12)


def test_backup_workers_gradients_for_an_old_version_are_dropped():
    g, w, pulls, pushes, counters, init = sync_graph(3, replicas=2)
    with sl.Session(graph=g) as sess:
        sess.run(init)
        held = sess.run(pulls[2])  # Worker 2 (the slow one) reads version 0.
        sess.run(pushes[0])
        sess.run(pushes[1])  # Two of three: version 1 applied without worker 2.
        want = W0 - F32(0.1) * np.mean([gradient(m, W0) for m in range(2)], axis=0)
        np.testing.assert_allclose(sess.run(w), want, rtol=1e-12)
        # Worker 2's gradient, computed on version 0, arrives late: dropped and counted.
        sess.run(pushes[2], {pulls[2]: held, g.leads[2]: 0})
        np.testing.assert_allclose(sess.run(w), want, rtol=1e-12)
        assert sess.run(counters).tolist() == [3, 1, 1, 0, 0]


def test_row_pulls_and_pushes_match_numpy():
    table = RNG.normal(size=(10, 3))
    g = sl.Graph()
    with g.as_default():
        emb = sl.Variable(table, name="emb")
        idx = sl.placeholder(sl.int64, [None])
        rows = sl.ps.pull_rows(emb, idx, worker=0)
        values = sl.placeholder(sl.float64, [None, 3])
        push = sl.ps.push_rows(emb, idx, values, worker=0, learning_rate=0.5)
        bad = sl.ps.pull_rows(emb, [3, 10], worker=0)
        init = sl.global_variables_initializer()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(rows, {idx: [1, 4, 1]}), table[[1, 4, 1]])
        v = RNG.normal(size=(3, 3))
        assert sess.run(push, {idx: [1, 4, 1], values: v}) == 0
        want = table.copy()
        for i, r in enumerate([1, 4, 1]):  # A repeated row takes both updates.
            want[r] -= 0.5 * v[i]
        np.testing.assert_allclose(sess.run(emb), want, rtol=1e-12)
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match=r"indices\[1\] = 10 is not a row of variable 'emb' \(10 rows\)"):
            sess.run(bad)


def test_an_embedding_step_moves_only_the_touched_rows():
    """A 100k x 64 float32 embedding (25.6 MB) on a ps task; each step pulls 1,000 rows to the
    worker and pushes their gradient back. Every tensor crossing between the ps and the worker
    is one Send/Recv of exactly that tensor: the graph's crossing edges carry the 1,000 rows
    each way (512 KB a step), never the 51 MB of a dense pull and push; and the step trains
    only those rows."""
    rows, dim, batch, steps = 100_000, 64, 1_000, 5
    with sl.LocalCluster(workers=1, ps=1) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:ps/task:0"):
                emb = sl.Variable(sl.zeros([rows, dim]), name="emb")
                idx = sl.placeholder(sl.int64, [batch])
            with sl.device("/job:worker/task:0"):
                looked_up = sl.ps.pull_rows(emb, idx, worker=0)
                loss = sl.reduce_sum(sl.square(looked_up - 1.0))
                grad, = sl.gradients(loss, [looked_up])
            step = sl.ps.push_rows(emb, idx, grad, worker=0, learning_rate=0.1)
            init = sl.global_variables_initializer()
        assert looked_up.op.device == "/job:ps/task:0" and grad.op.device == "/job:worker/task:0"
        crossing = 0
        for op in g.get_operations():
            for t in op.inputs:
                devices = {t.op.device, op.device}
                if devices == {"/job:ps/task:0", "/job:worker/task:0"}:
                    assert t.shape.as_list() in ([batch, dim], [batch]), (op.name, t.shape)
                    crossing += int(np.prod(t.shape.as_list())) * t.dtype.as_numpy_dtype.itemsize
        assert crossing == 2 * batch * dim * 4
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(init)
            feed = {idx: np.arange(batch) * 97 % rows}
            for _ in range(steps):
                sess.run(step, feed)
            table = sess.run(emb)
    touched = np.zeros(rows, bool)
    touched[feed[idx]] = True
    np.testing.assert_allclose(table[touched], 1 - 0.8 ** steps, rtol=1e-5)
    assert not table[~touched].any()


def test_async_example_trains_on_two_ps_and_three_workers():
    import os
    import re
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "async_ps.py")
    out = subprocess.run([sys.executable, script, "--epochs", "4"], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "/job:ps/task:0: 32000 bytes in 1 variable(s): embedding (32000)" in out, out
    accuracy = [float(a) for a in re.findall(r"^epoch \d+  test loss \S+  accuracy (\S+)", out,
                                             re.M)]
    assert len(accuracy) == 4 and accuracy[-1] > 0.85, out
    for name in ("embedding", "dense_w", "dense_b"):
        counts = re.search(r"^delays of {}: (.*)$".format(name), out, re.M).group(1)
        # Every push of the 3 workers x 4 epochs x 40 batches is in the histogram.
        assert sum(int(c.split(":")[1]) for c in counts.split()) == 3 * 4 * 40, out


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_matches_numpy_under_a_seeded_random_schedule(rule):
    schedule = sl.ps.DelayScheduler(3, seed=7, max_delay=3).events(pushes=30)
    assert schedule == sl.ps.DelayScheduler(3, seed=7, max_delay=3).events(pushes=30)
    assert schedule != sl.ps.DelayScheduler(3, seed=8, max_delay=3).events(pushes=30)
    hyper = CASES[rule]
    ours = Workers(rule, **hyper)
    ref = Reference(rule, lr=hyper["learning_rate"], lam=hyper.get("lam", 0.0),
                    mu=hyper.get("momentum", 0.95), eps=hyper.get("epsilon", 1e-7),
                    beta=hyper.get("beta", 1.0))
    held = {}
    for event, m in schedule:
        if event == "pull":
            held[m] = ref.pull(m)
            ours.pull(m)
        else:
            assert ours.push(m) == ref.push(m, gradient(m, held[m]))
    assert max(ref.delays) == 3 and len(ref.delays) == 30  # Delays up to the bound.
    np.testing.assert_allclose(ours.sess.run(ours.w), ref.w, rtol=1e-10)


def full_loss(w):
    return float(np.mean([np.mean((x @ w - y) ** 2) for x, y in SHARDS]))


def delayed_run(rule, lam, pushes=200, workers=8, max_delay=8, lr=0.2, logistic=False,
                every=50):
    """Loss of the shared model after every `every` pushes of a seeded schedule with delays up
    to `max_delay` (8 workers over the 3 least-squares shards, or the 4 logistic ones)."""
    shards = LOGISTIC_SHARDS if logistic else SHARDS
    ours = Workers(rule, n=workers, shards=shards, logistic=logistic, learning_rate=lr, lam=lam)
    curve, done = [], 0
    for event, m in sl.ps.DelayScheduler(workers, seed=3, max_delay=max_delay).events(pushes):
        getattr(ours, event)(m)
        if event == "push":
            done += 1
            if done % every == 0:
                w = ours.sess.run(ours.w)
                curve.append(logistic_loss(w) if logistic else full_loss(w))
    return curve


# Logistic regression: 4 shards of 40 examples, 5 features, labels of a linear rule under heavy
# noise (so the optimum's loss is far from 0).
_LOGISTIC_RNG = np.random.default_rng(5)
LOGISTIC_SHARDS = []
for _ in range(4):
    _x = _LOGISTIC_RNG.normal(size=(40, 5))
    _y = (_x @ np.array([[2.0], [-1.0], [0.5], [1.5], [-2.0]])
          + _LOGISTIC_RNG.normal(0, 2.0, (40, 1)) > 0).astype(np.float64)
    LOGISTIC_SHARDS.append((_x, _y))


def logistic_loss(w):
    """Mean sigmoid cross-entropy over all the logistic shards, in numpy."""
    losses = []
    for x, y in LOGISTIC_SHARDS:
        z = x @ w
        losses.append(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
    return float(np.mean(losses))


def test_delay_compensation_beats_plain_asgd_under_injected_delay():
    # The optimum of the three shards' mean squared error, for reference.
    x = np.vstack([s[0] for s in SHARDS])
    y = np.vstack([s[1] for s in SHARDS])
    best = full_loss(np.linalg.lstsq(x, y, rcond=None)[0])
    asgd = delayed_run("asgd", 0.0)
    dc = delayed_run("dc_asgd", 2.0)
    dc_a = delayed_run("dc_asgd_a", 1.0)
    assert dc[-1] < asgd[-1] and dc_a[-1] < asgd[-1], (asgd, dc, dc_a)
    assert dc[-1] - best < 0.5 * (asgd[-1] - best), (best, asgd, dc)  # Much closer.


def test_delay_compensation_beats_plain_asgd_on_logistic_regression():
    """The same on logistic regression (eta 4, 400 pushes, delays up to 8; the curves are in
    docs/parameter_servers.md): both DC-ASGD forms end lower than plain ASGD."""
    run = functools.partial(delayed_run, pushes=400, lr=4.0, logistic=True, every=100)
    asgd, dc, dc_a = run("asgd", 0.0), run("dc_asgd", 2.0), run("dc_asgd_a", 0.2)
    assert dc[-1] < asgd[-1] and dc_a[-1] < asgd[-1], (asgd, dc, dc_a)
    assert np.mean(dc) < np.mean(asgd) and np.mean(dc_a) < np.mean(asgd), (asgd, dc, dc_a)


def test_a_lost_ps_task_fails_the_step_naming_it_and_a_checkpoint_resumes(tmp_path):
    with sl.LocalCluster(workers=1, ps=1) as cluster:
        worker = ClusterWorker(0, learning_rate=0.1)
        g, w, step, init = worker.graph, worker.w, worker.push, worker.init
        with g.as_default():
            saver = sl.train.Saver([w])
        path = str(tmp_path / "ps.ckpt")
        config = sl.ConfigProto(step_timeout_seconds=20)
        with sl.Session(cluster.target, graph=g, config=config) as sess:
            sess.run(init)
            for _ in range(3):
                sess.run(step)
            saver.save(sess, path)
            saved = sess.run(w)
            cluster.kill_ps(0)
            start = time.monotonic()
            with pytest.raises(sl.errors.UnavailableError, match="/job:ps/task:0"):
                sess.run(step)
            assert time.monotonic() - start < 10
            cluster.restart_ps(0)
            deadline = time.monotonic() + 30
            while True:  # Until the master has registered the partitions on the new task.
                try:
                    saver.restore(sess, path)
                    break
                except (sl.errors.UnavailableError, sl.errors.NotFoundError):
                    assert time.monotonic() < deadline
            np.testing.assert_array_equal(sess.run(w), saved)
            sess.run(step)
            want = saved - F32(0.1) * gradient(0, saved)
            np.testing.assert_allclose(sess.run(w), want, rtol=1e-12)


def test_asynchronous_training_goes_on_when_a_worker_dies_and_it_rejoins():
    with sl.LocalCluster(workers=2, ps=1) as cluster:
        first, second = ClusterWorker(0, 0.1), ClusterWorker(1, 0.1)
        g0, w0, step0, init0, counters = (first.graph, first.w, first.push, first.init,
                                          first.counters)
        g1, step1, pulled1 = second.graph, second.push, second.pulled
        config = sl.ConfigProto(step_timeout_seconds=20)
        with sl.Session(cluster.target, graph=g0, config=config) as s0, \
                sl.Session(cluster.target, graph=g1, config=config) as s1:
            s0.run(init0)
            s0.run(step0)
            s1.run(step1)
            cluster.kill_worker(1)
            for _ in range(3):  # Worker 0 and the ps go on without worker 1.
                s0.run(step0)
            cluster.restart_worker(1)
            deadline = time.monotonic() + 30
            while True:  # Until the master has registered worker 1's partitions again.
                try:
                    got = s1.run(pulled1)
                    break
                except (sl.errors.UnavailableError, sl.errors.NotFoundError):
                    assert time.monotonic() < deadline
            np.testing.assert_array_equal(got, s0.run(w0))  # It pulls the fresh values.
            s1.run(step1)
            assert s0.run(counters)[0] == 6  # Every push of both workers was applied.


def test_rules_declared_by_name_pattern_apply_to_pulls_and_pushes():
    g = sl.Graph()
    with g.as_default():
        sl.ps.declare("embedding*", "asgd", learning_rate=0.5)
        sl.ps.declare("dense/*", "dc_asgd", learning_rate=0.1, lam=2.0)
        w = sl.Variable(W0, name="dense/w")
        other = sl.Variable(np.zeros(2), name="bias")
        assert sl.ps.declared_rule(w) == ("dc_asgd", {"learning_rate": 0.1, "lam": 2.0})
        assert sl.ps.declared_rule(other) == ("asgd", {})
        pulls, leads, pushes = [], [], []
        for m in range(3):
            w_m, lead = sl.ps.pull(w, worker=m, return_lead=True)  # dc_asgd: keeps backups
            x, y = SHARDS[m]
            loss = sl.reduce_mean(sl.square(sl.matmul(sl.constant(x), w_m) - y))
            grad, = sl.gradients(loss, [w_m])
            pulls.append(w_m)
            leads.append(lead)
            pushes.append(sl.ps.push(w, grad, worker=m))
        init = sl.global_variables_initializer()
    with pytest.raises(TypeError, match=r"unknown hyper-parameters \['lr'\]"):
        sl.ps.declare("x", "asgd", lr=0.1)
    ref = Reference("dc_asgd", lr=0.1, lam=2.0)
    held = {}
    with sl.Session(graph=g) as sess:
        sess.run(init)
        for event, m in SCHEDULE:
            if event == "pull":
                held[m] = ref.pull(m)
                sess.run(pulls[m])
            else:
                ref.push(m, gradient(m, held[m]))
                sess.run(pushes[m], {pulls[m]: held[m], leads[m]: 0})
        np.testing.assert_allclose(sess.run(w), ref.w, rtol=1e-12)


def test_local_steps_push_their_accumulated_update_every_k_steps():
    k, lr = 3, 0.1
    g = sl.Graph()
    with g.as_default():
        w = sl.Variable(W0, name="w")
        locals_, steps = [], []
        for m in range(2):
            local = sl.ps.LocalSteps(w, worker=m, device="/device:cpu:0", learning_rate=lr)
            x, y = SHARDS[m]
            loss = sl.reduce_mean(sl.square(sl.matmul(sl.constant(x), local.value) - y))
            grad, = sl.gradients(loss, [local.value])
            locals_.append(local)
            steps.append(local.step(grad))
        counters = sl.ps.counters(w)
        init = sl.global_variables_initializer()
    server = W0.copy()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        # Worker 0 refreshes, then worker 1; 0 pushes after its K steps, then 1 (from the
        # value it pulled before 0's push: its update lands on the newer server value).
        held = {}
        for m in range(2):
            sess.run(locals_[m].refresh)
            held[m] = server.copy()
        for m in range(2):
            x_m, total = held[m].copy(), np.zeros_like(W0)
            for _ in range(k):
                sess.run(steps[m])
                grad = gradient(m, x_m)
                x_m, total = x_m - lr * grad, total + grad  # A graph constant: exact.
            np.testing.assert_allclose(sess.run(locals_[m].value), x_m, rtol=1e-12)
            sess.run(locals_[m].push)
            server = server - F32(lr) * total  # A push attribute: single precision.
            np.testing.assert_allclose(sess.run(w), server, rtol=1e-12)
        assert sess.run(counters)[0] == 2  # One push per K steps per worker.


@pytest.mark.parametrize("rule,hyper", [
    ("dc_asgd_a", CASES["dc_asgd_a"]),                # Backups per worker and the mean square.
    ("sync", dict(learning_rate=0.1, replicas=2)),    # A version half aggregated.
])
def test_a_checkpoint_carries_the_ps_state_and_reinitializing_starts_it_over(tmp_path, rule,
                                                                            hyper):
    a = Workers(rule, n=2, **hyper)
    a.pull(0)
    a.pull(1)
    a.push(0)
    path = sl.train.Saver().save(a.sess, str(tmp_path / "model.ckpt"))
    held = a.held[1]
    want = (a.push(1), a.sess.run(a.w), a.sess.run(a.histogram))
    # A new session of the same model, restored, goes on exactly where the first one saved.
    b = Workers(rule, n=2, **hyper)
    sl.train.Saver().restore(b.sess, path)
    b.held[1] = held
    got = (b.push(1), b.sess.run(b.w), b.sess.run(b.histogram))
    assert got[0] == want[0] == 1
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    with b.graph.as_default():
        counters = sl.ps.counters(b.w)
        init = b.w.initializer
    assert b.sess.run(counters)[0] == 2
    if rule == "dc_asgd_a":  # Both workers' backups: two copies of the 3 x 1 float64 variable.
        assert b.sess.run(counters)[4] == 2 * 3 * 8
    b.sess.run(init)  # A new initialisation: clocks, backups and histogram start over.
    assert b.sess.run(counters).tolist() == [0, 0, 0, 0, 0]
    assert b.sess.run(b.histogram).tolist() == []
    # The checkpoint's entries: the value and the state beside it.
    names = sorted(n for n, _ in sl._core.core._read_checkpoint(path))
    assert names == ["w", "w:ps_clocks", "w:ps_values"]


def test_a_checkpoint_without_ps_state_restores_the_values_and_starts_the_state_over(tmp_path):
    a = Workers("asgd", n=2, learning_rate=0.1)
    a.pull(0)
    a.push(0)
    path = sl.train.Saver([a.w]).save(a.sess, str(tmp_path / "model.ckpt"))
    plain = str(tmp_path / "plain.ckpt")
    a.sess._session.save(plain, ["w"])  # The engine's own save: values only.
    with a.graph.as_default():
        counters = sl.ps.counters(a.w)
    sl.train.Saver().restore(a.sess, plain)
    assert a.sess.run(counters).tolist() == [0, 0, 0, 0, 0]
    sl.train.Saver().restore(a.sess, path)
    assert a.sess.run(counters).tolist() == [1, 0, 0, 0, 0]
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match="the parameter-server state saved for variable 'w' holds 3 "
                             "float64 values; the variable \\(float64 \\[3,1\\]\\) needs 0"):
        sl.ps.import_state(a.sess, {"w": (a.sess.run(a.sess.graph.get_tensor_by_name(
            "_ps_state/export:1")), np.zeros(3))})


class RowReference:
    """Row pulls and pushes of ops/ps_rows_ops.cc in numpy: each index of a push in order."""

    def __init__(self, rule, table, lr, lam=0.0, mu=0.95, eps=1e-7, beta=1.0):
        self.rule, self.w = rule, table.copy()
        self.lr, self.lam, self.mu, self.eps, self.beta = map(F32, (lr, lam, mu, eps, beta))
        self.clock, self.pulled, self.backup = 0, {}, {}
        self.ms = np.zeros_like(table)

    def pull(self, m, ids):
        self.pulled[m] = self.clock
        rows = self.w[ids].copy()
        if self.rule.startswith("dc_asgd"):
            self.backup[m] = {r: rows[i] for i, r in reversed(list(enumerate(ids)))}
        return rows

    def push(self, m, ids, g):
        tau, t = self.clock - self.pulled.get(m, 0), self.clock
        for i, r in enumerate(ids):
            if self.rule in ("asgd", "hogwild"):
                self.w[r] -= self.lr * g[i]
            elif self.rule == "adadelay":
                self.w[r] -= self.lr / (self.beta + np.sqrt(t + tau)) * g[i]
            else:
                lam = self.lam
                if self.rule == "dc_asgd_a":
                    self.ms[r] = self.mu * self.ms[r] + (1 - self.mu) * g[i] * g[i]
                    lam = self.lam / np.sqrt(self.ms[r] + self.eps)
                bak = self.backup.get(m, {}).get(r, self.w[r])
                self.w[r] -= self.lr * (g[i] + lam * g[i] * g[i] * (self.w[r] - bak))
        self.clock += 1
        return tau


ROW_CASES = {
    "asgd": dict(learning_rate=0.1),
    "hogwild": dict(learning_rate=0.1),
    "adadelay": dict(learning_rate=0.5, beta=2.0),
    "dc_asgd": dict(learning_rate=0.1, lam=0.5),
    "dc_asgd_a": dict(learning_rate=0.1, lam=0.1, momentum=0.9, epsilon=1e-6),
}


@pytest.mark.parametrize("rule", sorted(ROW_CASES))
def test_each_rule_on_rows_matches_its_equation_under_a_seeded_schedule(rule):
    """Three workers pull and push overlapping rows of a 10 x 3 table (worker m: rows m, m + 2,
    5 and m again) in a seeded schedule with delays up to 3; the gradient of row r is
    2 (row - target_m). Every delay and the final table equal the numpy reference, and a
    DC-ASGD push compensates with the rows as that worker's own last row pull read them."""
    hyper = ROW_CASES[rule]
    table = RNG.normal(size=(10, 3))
    ids = [np.array([m, m + 2, 5, m]) for m in range(3)]
    targets = [RNG.normal(size=(4, 3)) for _ in range(3)]
    g = sl.Graph()
    with g.as_default():
        emb = sl.Variable(table, name="emb")
        pulls = [sl.ps.pull_rows(emb, ids[m], worker=m, rule=rule) for m in range(3)]
        held = [sl.placeholder(sl.float64, [4, 3]) for _ in range(3)]
        pushes = [sl.ps.push_rows(emb, ids[m], 2.0 * (held[m] - targets[m]), worker=m,
                                  rule=rule, **hyper) for m in range(3)]
        counters = sl.ps.counters(emb)
        init = sl.global_variables_initializer()
    ref = RowReference(rule, table, lr=hyper["learning_rate"], lam=hyper.get("lam", 0.0),
                       mu=hyper.get("momentum", 0.95), eps=hyper.get("epsilon", 1e-7),
                       beta=hyper.get("beta", 1.0))
    values, delays = {}, []
    with sl.Session(graph=g) as sess:
        sess.run(init)
        for event, m in sl.ps.DelayScheduler(3, seed=5, max_delay=3).events(pushes=30):
            if event == "pull":
                values[m] = sess.run(pulls[m])
                np.testing.assert_allclose(values[m], ref.pull(m, ids[m]), rtol=1e-12)
            else:
                tau = sess.run(pushes[m], {held[m]: values[m]})
                delays.append(tau)
                assert tau == ref.push(m, ids[m], 2.0 * (values[m] - targets[m]))
        assert np.isfinite(ref.w).all() and not np.allclose(ref.w, table)
        np.testing.assert_allclose(sess.run(emb), ref.w, rtol=1e-10, atol=1e-12)
        backups = sess.run(counters)[4]
    assert max(delays) == 3
    # DC-ASGD keeps each worker's last pulled rows: 3 workers x 4 rows x 3 float64.
    assert backups == (3 * 4 * 3 * 8 if rule.startswith("dc_asgd") else 0)


def test_row_pushes_refuse_sync_and_a_second_rule():
    g = sl.Graph()
    with g.as_default():
        emb = sl.Variable(np.zeros((4, 2)), name="emb")
        with pytest.raises(ValueError, match="'sync' aggregates whole variables"):
            sl.ps.push_rows(emb, [0], np.ones((1, 2)), worker=0, rule="sync")
        first = sl.ps.push_rows(emb, [0], np.ones((1, 2)), worker=0, rule="hogwild")
        second = sl.ps.push_rows(emb, [1], np.ones((1, 2)), worker=1, rule="dc_asgd")
        init = sl.global_variables_initializer()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        sess.run(first)
        with pytest.raises(sl.errors.InvalidArgumentError,
                           match="variable 'emb' is updated by rule 'hogwild'; this row push "
                                 "asks for 'dc_asgd'"):
            sess.run(second)


def test_a_checkpoint_carries_the_row_backups(tmp_path):
    table = RNG.normal(size=(6, 2))

    def model():
        g = sl.Graph()
        with g.as_default():
            emb = sl.Variable(table, name="emb")
            pulls = [sl.ps.pull_rows(emb, [m, 3], worker=m, rule="dc_asgd") for m in range(2)]
            held = [sl.placeholder(sl.float64, [2, 2]) for _ in range(2)]
            pushes = [sl.ps.push_rows(emb, [m, 3], held[m] - 1.0, worker=m, rule="dc_asgd",
                                      learning_rate=0.3, lam=1.0) for m in range(2)]
            init = sl.global_variables_initializer()
        sess = sl.Session(graph=g)
        sess.run(init)
        return sess, emb, pulls, held, pushes

    sess, emb, pulls, held, pushes = model()
    rows = [sess.run(p) for p in pulls]
    sess.run(pushes[0], {held[0]: rows[0]})
    path = sl.train.Saver().save(sess, str(tmp_path / "rows.ckpt"))
    sess.run(pushes[1], {held[1]: rows[1]})  # Compensated against worker 1's backup of row 3.
    want = sess.run(emb)
    sess2, emb2, _, held2, pushes2 = model()
    sl.train.Saver().restore(sess2, path)
    sess2.run(pushes2[1], {held2[1]: rows[1]})
    np.testing.assert_array_equal(sess2.run(emb2), want)


def test_importing_a_state_replaces_the_whole_state():
    a = Workers("dc_asgd", n=3, learning_rate=0.1, lam=1.0)
    a.pull(0)
    a.push(0)
    saved = sl.ps.export_state(a.sess, ["w"])["w"]
    a.pull(1)
    a.pull(2)
    a.push(1)
    a.push(2)  # Three pushes and backups for workers 1 and 2 that the saved state lacks.
    with a.graph.as_default():
        counters = sl.ps.counters(a.w)
    assert a.sess.run(counters)[0] == 3
    sl.ps.import_state(a.sess, {"w": saved[1:]})
    assert a.sess.run(counters).tolist() == [1, 0, 0, 0, 3 * 1 * 8]  # Worker 0's backup only.
    assert a.sess.run(a.histogram).tolist() == [1]
