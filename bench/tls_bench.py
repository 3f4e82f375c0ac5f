#!/usr/bin/env python3
"""TLS's cost: the same LocalCluster without and with TLS on every plane (mutual TLS, throwaway
certificates), measured in one run: a 16 MiB tensor from worker 0 to worker 1 (generated
there, summed here; GB/s of steps), the control plane's round trip (Heartbeat to a worker over
one channel) and a trivial two-worker step. The design's target: TLS transfers at most 1.3x
slower.

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/tls_bench.py --steps 20
"""

import argparse
import statistics
import time

from bench_util import load_average

MIB = 1 << 20


def measure(sl, core, tls, steps, size):
    with sl.LocalCluster(workers=2, tls=tls, require_client_cert=tls) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                big = sl.random_uniform([size // 4])
                small = sl.constant([1.0, 2.0])
            with sl.device("/job:worker/task:1"):
                total = sl.reduce_sum(big)
                trivial = small + 1.0
        with sl.Session(cluster.target, graph=g) as sess:
            for _ in range(3):
                sess.run([total, trivial])
            transfer, step = [], []
            for _ in range(steps):
                start = time.perf_counter()
                sess.run(total)
                transfer.append(time.perf_counter() - start)
                for _ in range(10):
                    start = time.perf_counter()
                    sess.run(trivial)
                    step.append(time.perf_counter() - start)
            rtt = core._heartbeat_round_trips(cluster.worker_address(1)[0], 201)[1:]
    return (size / statistics.median(transfer) / 1e9, statistics.median(rtt),
            statistics.median(step) * 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--mib", type=int, default=16)
    args = parser.parse_args()
    import sluice as sl
    from sluice._core import core
    print("load average before: %s" % load_average())
    runs = {}
    for _ in range(2):  # Alternated, so load hits both alike; the medians of both rounds.
        for tls in (False, True):
            runs.setdefault(tls, []).append(measure(sl, core, tls, args.steps, args.mib * MIB))
    print("load average after: %s" % load_average())
    plain, secure = ([statistics.median(r[i] for r in runs[t]) for i in range(3)]
                     for t in (False, True))
    print()
    print("| what | plaintext | mutual TLS | TLS / plaintext |")
    print("| --- | --- | --- | --- |")
    print("| %d MiB tensor worker 0 -> worker 1 (GB/s of steps) | %.2f | %.2f | %.2fx slower |" % (
        args.mib, plain[0], secure[0], plain[0] / secure[0]))
    print("| control round trip (us) | %.0f | %.0f | %.2fx |" % (
        plain[1], secure[1], secure[1] / plain[1]))
    print("| trivial two-worker step (us) | %.0f | %.0f | %.2fx |" % (
        plain[2], secure[2], secure[2] / plain[2]))


if __name__ == "__main__":
    main()
