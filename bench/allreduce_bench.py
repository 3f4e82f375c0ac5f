#!/usr/bin/env python3
"""All-reduce bandwidth: Sluice's ring all-reduce (sl.collective, a step on a LocalCluster of n
sluice_server processes) against torch.distributed's gloo backend (n processes), float32 sum,
sizes 4 KiB to 64 MiB, on loopback.

Each Sluice step all-reduces variables that live on the workers (nothing crosses the client
link but a 4-byte-per-worker probe), so a step is the collective plus one step's overhead (the
master's RunStep and the workers' RunGraph calls). Each gloo iteration is one
`dist.all_reduce` of a preallocated tensor in every rank. Per size the script prints the median
time of each (repetitions interleaved), the algorithm bandwidth (S / t), the bus bandwidth
(algbw x 2(n-1)/n, nccl-tests' definition) and the ratio gloo time / Sluice time (> 1: Sluice
faster).

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/allreduce_bench.py --workers 2 4 --repetitions 3

python3-torch comes from Debian and is not installed by the test command: without it the
script measures Sluice alone ("peer skipped").
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from bench_util import free_port, load_average

SIZES = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
DEFAULT_MAX_SIZE = 64 << 20

GLOO_WORKER = r"""
import os, sys, time, statistics, torch, torch.distributed as dist
rank, n, port, size, iters, warm = map(int, sys.argv[1:7])
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                        world_size=n)
t = torch.ones(size // 4, dtype=torch.float32)
for _ in range(warm):
    dist.all_reduce(t)
times = []
for _ in range(iters):
    dist.barrier()
    s = time.perf_counter()
    dist.all_reduce(t)
    times.append(time.perf_counter() - s)
if rank == 0:
    print(statistics.median(times))
dist.destroy_process_group()
"""


def gloo_time(n, size, iters):
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", GLOO_WORKER, str(r), str(n), str(port),
                               str(size), str(iters), "2"],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
             for r in range(n)]
    out = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a gloo rank failed: {}".format([p.returncode for p in procs]))
    return float(out[0].strip())


class SluiceAllReduce:
    """A graph per size on one LocalCluster: per-worker variables, their all-reduce, a probe."""

    def __init__(self, sl, cluster, n):
        self.sl, self.cluster, self.n = sl, cluster, n
        self.sessions = {}

    def time(self, size, iters, algorithm="auto"):
        sl = self.sl
        if (size, algorithm) not in self.sessions:
            g = sl.Graph()
            with g.as_default():
                devices = ["/job:worker/task:%d" % i for i in range(self.n)]
                vs = []
                for d in devices:
                    with sl.device(d):
                        vs.append(sl.Variable(sl.ones([size // 4]),
                                              name="v_%d_%s_%s" % (size, algorithm, d[-1])))
                outs = sl.collective.all_reduce(vs, devices=devices, algorithm=algorithm)
                probes = []
                for d, o in zip(devices, outs):
                    with sl.device(d):
                        probes.append(sl.slice(o, [0], [1]))
                with sl.device(devices[0]):
                    probe = sl.add_n(probes)
                init = sl.global_variables_initializer()
            sess = sl.Session(self.cluster.target, graph=g)
            sess.run(init)
            for _ in range(2):
                sess.run(probe)
            self.sessions[(size, algorithm)] = (sess, probe)
        sess, probe = self.sessions[(size, algorithm)]
        times = []
        for _ in range(iters):
            s = time.perf_counter()
            got = sess.run(probe)
            times.append(time.perf_counter() - s)
        assert got[0] == self.n * self.n  # Each member's first element is n; n probes summed.
        return statistics.median(times)


def compare_algorithms(sl, args):
    print("load average before: " + load_average())
    print("| n | size | ring ms | recursive doubling ms | ring / doubling | cost model picks |")
    print("| --- | --- | --- | --- | --- | --- |")
    sizes = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
    for n in args.workers:
        with sl.LocalCluster(workers=n) as cluster:
            ours = SluiceAllReduce(sl, cluster, n)
            for size in [s for s in sizes if s <= args.max_size]:
                iters = max(3, args.iters if size < (16 << 20) else args.iters // 3)
                ring, doubling = [], []
                for _ in range(args.repetitions):
                    ring.append(ours.time(size, iters, "ring"))
                    doubling.append(ours.time(size, iters, "recursive_doubling"))
                r, d = statistics.median(ring), statistics.median(doubling)
                print("| {} | {} KiB | {:.3f} | {:.3f} | {:.2f} | {} |".format(
                    n, size >> 10, r * 1e3, d * 1e3, r / d,
                    sl.collective.choose_algorithm(size, n)), flush=True)
    print("load average after: " + load_average())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--max_size", type=int, default=DEFAULT_MAX_SIZE)
    parser.add_argument("--algorithms", action="store_true",
                        help="compare the ring with recursive doubling (no gloo): the data "
                        "behind the cost model's constants in ops/collectives.cc")
    args = parser.parse_args()
    import sluice as sl

    if args.algorithms:
        compare_algorithms(sl, args)
        return

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("peer skipped: python3-torch not installed; measuring Sluice alone")
    print("load average before: " + load_average())
    print("| n | size | sluice ms | gloo ms | sluice algbw MB/s | sluice busbw MB/s | "
          "gloo / sluice time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in args.workers:
        with sl.LocalCluster(workers=n) as cluster:
            ours = SluiceAllReduce(sl, cluster, n)
            for size in [s for s in SIZES if s <= args.max_size]:
                iters = max(3, args.iters if size < (16 << 20) else args.iters // 3)
                mine, peer = [], []
                for _ in range(args.repetitions):
                    mine.append(ours.time(size, iters))
                    if have_torch:
                        peer.append(gloo_time(n, size, iters))
                t = statistics.median(mine)
                algbw = size / t / 1e6
                row = "| {} | {} KiB | {:.3f} | {} | {:.0f} | {:.0f} | {} |".format(
                    n, size >> 10, t * 1e3,
                    "{:.3f}".format(statistics.median(peer) * 1e3) if peer else "-",
                    algbw, algbw * 2 * (n - 1) / n,
                    "{:.2f}".format(statistics.median(peer) / t) if peer else "-")
                print(row, flush=True)
    print("load average after: " + load_average())


if __name__ == "__main__":
    main()
