#!/usr/bin/env python3
"""Per-step overhead of the distributed runtime: a trivial model-parallel step on two workers of
a LocalCluster (a 2-float constant on worker 0, +1 on worker 1, fetched by the client) against
one plain gRPC unary round trip (a Heartbeat to a worker's control port over one channel)
measured in the same run; the design's target is a step within 3 round trips. Then the CPU
each process spends per step (all threads, user + system: on a machine with fewer cores than
busy processes, CPU spent idling hot delays every hop), and where the step's time goes, hop by
hop, from traced steps (sl.trace.hops: client -> master, master ->
each worker, each worker's partition, the Send -> Recv transfer, the replies), medians of
`--steps` traced runs on the raw clocks (one host: one clock).

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/step_overhead.py --steps 1000
"""

import argparse
import os
import resource
import statistics
import time

from bench_util import load_average


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    import sluice as sl
    from sluice._core import core as _core
    print("load average before: %s" % load_average())
    with sl.LocalCluster(workers=2) as cluster:
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                a = sl.constant([1.0, 2.0])
            with sl.device("/job:worker/task:1"):
                b = a + 1.0
            with sl.device("/job:worker/task:0"):
                local = sl.constant([3.0])
        control = cluster.worker_address(1)[0]
        with sl.Session(cluster.target, graph=g) as sess:
            for _ in range(50):
                sess.run(b)
                sess.run(local)
            step, one, round_trips = [], [], []
            for _ in range(max(args.steps // 50, 1)):  # Interleaved rounds: load hits all alike.
                for _ in range(50):
                    start = time.perf_counter()
                    sess.run(b)
                    step.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    sess.run(local)
                    one.append(time.perf_counter() - start)
                # A new channel per round: its first call connects, so it is left out.
                round_trips += _core._heartbeat_round_trips(control, 51)[1:]
            # CPU each process spends per two-worker step (every thread, user + system).
            tasks = [("master", 0), ("worker", 0), ("worker", 1)]
            cpu_before = [cluster.cpu_seconds(*t) for t in tasks] + [own_cpu_seconds()]
            wall = time.perf_counter()
            for _ in range(args.steps):
                sess.run(b)
            wall = time.perf_counter() - wall
            cpu = [after - before for after, before in zip(
                [cluster.cpu_seconds(*t) for t in tasks] + [own_cpu_seconds()], cpu_before)]
            options = sl.RunOptions(trace_level=sl.RunOptions.FULL_TRACE)
            per_hop = {}
            for _ in range(args.steps):
                md = sl.RunMetadata()
                sess.run(b, options=options, run_metadata=md)
                for what, micros in sl.trace.hops(md, align_clocks=False):
                    per_hop.setdefault(what, []).append(micros)
    print("load average after: %s" % load_average())
    rtt = statistics.median(round_trips)
    two, single = statistics.median(step) * 1e6, statistics.median(one) * 1e6
    print()
    print("| what | median (us) | in gRPC round trips |")
    print("| --- | --- | --- |")
    print("| gRPC unary round trip (Heartbeat) | %.0f | 1.00 |" % rtt)
    print("| trivial step, one worker | %.0f | %.2f |" % (single, single / rtt))
    print("| trivial step, two workers (Send/Recv between them) | %.0f | %.2f |" % (
        two, two / rtt))
    print()
    steps = args.steps
    names = ["master", "worker 0", "worker 1", "client (this process)"]
    print("CPU per two-worker step (user + system, all threads; %d steps back to back):" % steps)
    print()
    print("| process | CPU us per step |")
    print("| --- | --- |")
    for name, seconds in zip(names, cpu):
        print("| %s | %.0f |" % (name, seconds / steps * 1e6))
    print("| all | %.0f (%.2f of %d cores busy) |" % (
        sum(cpu) / steps * 1e6, sum(cpu) / wall, os.cpu_count()))
    print()
    print("Traced two-worker step, hop by hop (medians of %d):" % args.steps)
    print()
    print("| hop | median (us) |")
    print("| --- | --- |")
    for what, values in per_hop.items():
        print("| %s | %.0f |" % (what, statistics.median(values)))


if __name__ == "__main__":
    main()
