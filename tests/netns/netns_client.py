"""The client side of the netns tests: a Sluice RemoteSession driven by JSON commands, one per
line on stdin, each answered by one JSON line on stdout. Run on a host of the harness's network
(`ip netns exec`), so its traffic to the master crosses the emulated network.

    netns_client.py --target grpc://10.77.0.4:7000 --step_timeout_s 30 [--prefix c3_]

Commands:
  {"cmd": "ping"}                           -> {"ok": true}  (imported, master answering)
  {"cmd": "init"}                           -> one step result: initialises the model
  {"cmd": "train", "steps": n}              -> {"results": [n step results]}: training steps
  {"cmd": "slow", "heavy_on": 1, "size": 512, "reps": 8}
                                            -> one step result: the survivor sends a matrix to
                                               worker `heavy_on`, which multiplies it `reps`
                                               times and sends a scalar back; the survivor waits
                                               in a receive all that time
  {"cmd": "transfer", "elements": n}        -> one step result: n floats worker0 -> worker1 and
                                               back
  {"cmd": "loop", "seconds": s}             -> {"steps": [[end offset, seconds, ok, error]]}:
                                               training steps back to back for s seconds
  {"cmd": "quit"}

A step result is {"ok", "seconds", "error_type", "error"}; errors never end the client.
The model is the tests' two-worker model (python/tests/two_worker_model.py: layer 1 on
/job:worker/task:0, layer 2 on /job:worker/task:1), with variable names prefixed by --prefix
so that concurrent clients (variables are shared by name across a cluster) keep their own.
"""

import argparse
import json
import sys
import time
import traceback

import numpy as np

import sluice as sl

_W0 = "/job:worker/task:0"
_W1 = "/job:worker/task:1"


def build_model(prefix, hidden=8):
    """The two-worker model; returns (graph, tensors by name)."""
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None, 4], name=prefix + "x")
        y = sl.placeholder(sl.int64, shape=[None], name=prefix + "y")
        with sl.device(_W0):
            w1 = sl.Variable(sl.random_normal([4, hidden], seed=1), name=prefix + "w1")
            h = sl.nn.relu(sl.matmul(x, w1))
        with sl.device(_W1):
            w2 = sl.Variable(sl.random_normal([hidden, 3], seed=2), name=prefix + "w2")
            logits = sl.matmul(h, w2)
        loss = sl.reduce_mean(
            sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = sl.global_variables_initializer()
    return g, dict(x=x, y=y, loss=loss, train=train, init=init)


def build_slow(heavy_on, size, reps):
    """A step whose survivor waits in a receive while worker `heavy_on` computes."""
    heavy, survivor = (_W1, _W0) if heavy_on == 1 else (_W0, _W1)
    g = sl.Graph()
    with g.as_default():
        with sl.device(survivor):
            seed = sl.random_normal([size, size], stddev=1.0 / size, seed=3)
        with sl.device(heavy):
            m = seed
            for _ in range(reps):
                m = sl.tanh(sl.matmul(m, seed))
            total = sl.reduce_sum(m)
        with sl.device(survivor):
            out = total + 1.0
    return g, out


def build_transfer(elements):
    """A step moving `elements` floats worker0 -> worker1 -> worker0."""
    g = sl.Graph()
    with g.as_default():
        with sl.device(_W0):
            a = sl.ones([elements])
        with sl.device(_W1):
            b = a * 2.0
        with sl.device(_W0):
            out = sl.reduce_sum(b)
    return g, out


class Client:
    def __init__(self, target, step_timeout_s, prefix):
        self.target = target
        self.config = sl.ConfigProto(step_timeout_seconds=step_timeout_s)
        self.prefix = prefix
        self.sessions = {}  # One session per graph: a graph is frozen by its first run.
        self.model = build_model(prefix)
        self.step_index = 0

    def session(self, key, graph):
        if key not in self.sessions:
            self.sessions[key] = sl.Session(self.target, graph=graph, config=self.config)
        return self.sessions[key]

    @staticmethod
    def timed(fn):
        start = time.monotonic()
        try:
            fn()
            return dict(ok=True, seconds=time.monotonic() - start, error_type=None, error=None)
        except Exception as e:  # noqa: BLE001 - reported to the harness
            return dict(ok=False, seconds=time.monotonic() - start,
                        error_type=type(e).__name__, error=str(e))

    def train_step(self):
        g, m = self.model
        rng = np.random.default_rng(self.step_index)
        self.step_index += 1
        feed = {m["x"]: rng.normal(size=(16, 4)).astype(np.float32),
                m["y"]: rng.integers(0, 3, size=16)}
        return self.timed(lambda: self.session("model", g).run([m["train"], m["loss"]], feed))

    def handle(self, command):
        cmd = command["cmd"]
        if cmd == "ping":
            self.session("model", self.model[0]).list_devices()
            return dict(ok=True)
        if cmd == "init":
            g, m = self.model
            return self.timed(lambda: self.session("model", g).run(m["init"]))
        if cmd == "train":
            return dict(results=[self.train_step() for _ in range(int(command.get("steps", 1)))])
        if cmd == "slow":
            key = ("slow", command["heavy_on"], command["size"], command["reps"])
            if key not in self.sessions:
                g, out = build_slow(command["heavy_on"], command["size"], command["reps"])
                self.sessions[key] = (sl.Session(self.target, graph=g, config=self.config), out)
            sess, out = self.sessions[key]
            return self.timed(lambda: sess.run(out))
        if cmd == "transfer":
            key = ("transfer", command["elements"])
            if key not in self.sessions:
                g, out = build_transfer(command["elements"])
                self.sessions[key] = (sl.Session(self.target, graph=g, config=self.config), out)
            sess, out = self.sessions[key]
            return self.timed(lambda: sess.run(out))
        if cmd == "loop":
            start = time.monotonic()
            steps = []
            while time.monotonic() - start < float(command["seconds"]):
                r = self.train_step()
                steps.append([time.monotonic() - start, r["seconds"], r["ok"], r["error"]])
            return dict(steps=steps)
        raise ValueError("unknown command {!r}".format(cmd))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--step_timeout_s", type=float, default=30.0)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    client = Client(args.target, args.step_timeout_s, args.prefix)
    for line in sys.stdin:  # End of file: the harness went away.
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        try:
            reply = client.handle(command)
        except Exception:  # noqa: BLE001 - a harness bug or a dead master: report, go on
            reply = dict(fatal=traceback.format_exc())
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
