#!/usr/bin/env python3
"""Parameter-server pull and push: Sluice (sl.ps on a LocalCluster of 1 worker + 1 ps task)
against torch.distributed.rpc (Debian's python3-torch: a ps process holding the tensor and a
worker process calling rpc_sync), dense float32 tensors of 4 KiB to 64 MiB, on loopback.

Sluice: a pull is a step that pulls the variable on the ps task and reads it on the worker (a
one-element slice comes back to the client); a push is a step that makes a gradient on the
worker and pushes it (ASGD) to the ps. Each is a whole step: client RunStep, master, the
worker's and the ps task's RunGraph, the transfer. torch: `rpc_sync("ps", pull)` returning the
tensor, `rpc_sync("ps", push, args=(g,))` applying it, called from the worker process itself.
Medians over interleaved repetitions; ratio = torch time / Sluice time (> 1: Sluice faster).
The 4 KiB pull is the small-key latency.

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/ps_bench.py --repetitions 3
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from bench_util import free_port, load_average

SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]

TORCH_PEER = r"""
import os, sys, time, statistics, torch, torch.distributed.rpc as rpc
rank, port, size, iters = map(int, sys.argv[1:5])
W = {}
def pull():
    return W["w"]
def push(g):
    W["w"].sub_(g, alpha=0.01)
    return 0
os.environ["MASTER_ADDR"] = "127.0.0.1"
os.environ["MASTER_PORT"] = str(port)
torch.set_num_threads(1)
opts = rpc.TensorPipeRpcBackendOptions(num_worker_threads=4, rpc_timeout=120)
rpc.init_rpc("ps" if rank == 0 else "worker", rank=rank, world_size=2, rpc_backend_options=opts)
if rank == 1:
    g = torch.ones(size // 4)
    rpc.rpc_sync("ps", pull)
    times = {"pull": [], "push": []}
    for _ in range(iters):
        t = time.perf_counter(); rpc.rpc_sync("ps", pull); times["pull"].append(time.perf_counter() - t)
        t = time.perf_counter(); rpc.rpc_sync("ps", push, args=(g,)); times["push"].append(time.perf_counter() - t)
    print(statistics.median(times["pull"]), statistics.median(times["push"]), flush=True)
else:
    W["w"] = torch.zeros(size // 4)
rpc.shutdown()
"""


def torch_times(size, iters):
    """(pull, push) seconds of the torch peer, or None when it failed or hung (its 64 MiB
    run has done both on this machine: the worker exits with an error and the ps spins in
    rpc.shutdown)."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    procs = [subprocess.Popen([sys.executable, "-c", TORCH_PEER, str(r), str(port), str(size),
                               str(iters)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env) for r in range(2)]
    try:
        out = procs[1].communicate(timeout=180)[0]
        procs[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        out = ""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if procs[1].returncode != 0 or not out.strip():
        return None
    pull, push = map(float, out.split())
    return pull, push


class SluicePs:
    """Per size: a graph with the variable on the ps, its pull read on the worker, a push."""

    def __init__(self, sl, cluster):
        self.sl, self.cluster, self.graphs = sl, cluster, {}

    def times(self, size, iters):
        sl = self.sl
        if size not in self.graphs:
            g = sl.Graph()
            with g.as_default():
                with sl.device("/job:ps/task:0"):
                    w = sl.Variable(sl.zeros([size // 4]), name="w_%d" % size)
                pulled = sl.ps.pull(w, worker=0)
                with sl.device("/job:worker/task:0"):
                    probe = sl.slice(pulled, [0], [1])  # The pulled tensor reaches the worker.
                    grad = sl.fill([size // 4], 1.0)
                push = sl.ps.push(w, grad, worker=0, learning_rate=0.01)
                init = sl.global_variables_initializer()
            sess = sl.Session(self.cluster.target, graph=g)
            sess.run(init)
            for _ in range(2):
                sess.run(probe)
                sess.run(push)
            self.graphs[size] = (sess, probe, push)
        sess, probe, push = self.graphs[size]
        pulls, pushes = [], []
        for _ in range(iters):
            t = time.perf_counter()
            sess.run(probe)
            pulls.append(time.perf_counter() - t)
            t = time.perf_counter()
            sess.run(push)
            pushes.append(time.perf_counter() - t)
        return statistics.median(pulls), statistics.median(pushes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--max_size", type=int, default=64 << 20)
    args = parser.parse_args()
    import sluice as sl

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("peer skipped: python3-torch not installed; measuring Sluice alone")
    print("load average before: " + load_average())
    print("| size | Sluice pull ms | torch pull ms | pull ratio | Sluice push ms | "
          "torch push ms | push ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with sl.LocalCluster(workers=1, ps=1) as cluster:
        ours = SluicePs(sl, cluster)
        for size in [s for s in SIZES if s <= args.max_size]:
            iters = args.iters if size < (16 << 20) else max(3, args.iters // 3)
            mine, peer = [], []
            for _ in range(args.repetitions):  # Interleaved.
                mine.append(ours.times(size, iters))
                if have_torch:
                    got = torch_times(size, iters)
                    if got is not None:
                        peer.append(got)
            pull = statistics.median(m[0] for m in mine)
            push = statistics.median(m[1] for m in mine)
            if peer:
                tpull = statistics.median(p[0] for p in peer)
                tpush = statistics.median(p[1] for p in peer)
                cells = ["{:.3f}".format(tpull * 1e3), "{:.2f}".format(tpull / pull),
                         "{:.3f}".format(push * 1e3), "{:.3f}".format(tpush * 1e3),
                         "{:.2f}".format(tpush / push)]
            else:
                failed = "peer failed" if have_torch else "-"
                cells = [failed, "-", "{:.3f}".format(push * 1e3), failed, "-"]
            print("| {} KiB | {:.3f} | {} |".format(size >> 10, pull * 1e3, " | ".join(cells)),
                  flush=True)
    print("load average after: " + load_average())


if __name__ == "__main__":
    main()
