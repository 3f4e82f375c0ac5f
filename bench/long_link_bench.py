"""Step time over a long link against raw TCP over the same link, in one run.

Two workers on hosts of their own (network namespaces, tests/netns/netns_harness.py) reach
each other's data ports only through delaying proxies (tests/netns/delay_proxy.py; iptables
DNAT sends each worker's connections to its peer's data port through one), so every tensor
crosses a link with --one_way_ms of latency each way. A Sluice step moves --mib MiB from
worker0 to worker1 and back ("transfer": ones on task 0, doubled on task 1, summed on task 0);
the peer moves the same bytes over one warm TCP socket through a proxy of its own
(tests/netns/tcp_pingpong.py). Rounds alternate between the two, so load on the machine hits
both alike. Prints p50, p90 and max of each and their ratios; the JSON goes to --out.

Needs root (namespaces and iptables) and the Python module:

    eval "$(tools/python_env.sh)"
    /usr/bin/python3 bench/long_link_bench.py                  # 50 ms each way, 16 MiB, 20 rounds
    /usr/bin/python3 bench/long_link_bench.py --rounds 40 --one_way_ms 25
"""

import argparse
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "tests", "netns"))

import netns_harness as nh  # noqa: E402


def _dnat(host, target, via):
    """New connections from `host` to `target` ("ip:port") go to `via` instead."""
    ip, port = target.split(":")
    nh._run(host.command(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", ip,
                          "--dport", port, "-j", "DNAT", "--to-destination", via]))


def _summary(values):
    return dict(p50=nh.percentile(values, 50), p90=nh.percentile(values, 90), max=max(values),
                rounds=len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one_way_ms", type=float, default=50.0)
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=None, help="where the JSON result goes")
    args = parser.parse_args()
    try:
        nh.check_prerequisites()
    except nh.Unavailable as e:
        print("long_link_bench: skipped: {}".format(e))
        return 0
    nh.install_signal_cleanup()
    from sluice.distributed import find_server_binary

    size = args.mib << 20
    with nh.Network() as net:
        cluster = nh.Cluster(net, find_server_binary(), start=False)
        cluster.start_workers()
        w0, w1 = cluster.workers
        wan = net.add_host("wan")
        for src, dst in ((w0, w1), (w1, w0)):
            data = "{}:{}".format(dst.host.address, nh.DATA_PORT)
            proxy = nh.DelayProxy(net, wan, data, args.one_way_ms,
                                  name="proxy-to-{}".format(dst.name))
            _dnat(src.host, data, proxy.address)
        cluster.start_master()
        client = nh.Client(net, cluster.target, step_timeout_s=120)
        transfer = {"cmd": "transfer", "elements": size // 4}
        first = client.step(transfer)  # Opens the links (and warms them).
        if not first["ok"]:
            raise RuntimeError("the first transfer failed: {}".format(first))

        # The raw TCP peer: a server on worker1's host, a client on worker0's, a proxy between.
        server = net.start("pingpong-server", w1.host,
                           [sys.executable, "-u", os.path.join(_HERE, "..", "tests", "netns",
                                                               "tcp_pingpong.py"),
                            "--serve", "{}:7100".format(w1.host.address), "--bytes", str(size)])
        server.wait_for_line("PINGPONG_READY", timeout=30)
        proxy = nh.DelayProxy(net, wan, "{}:7100".format(w1.host.address), args.one_way_ms,
                              name="proxy-pingpong")
        raw = net.start("pingpong-client", w0.host,
                        [sys.executable, "-u", os.path.join(_HERE, "..", "tests", "netns",
                                                            "tcp_pingpong.py"),
                         "--connect", proxy.address, "--bytes", str(size)])
        raw.wait_for_line("PINGPONG_READY", timeout=30)
        raw.send_line("round")  # Warm, as Sluice's first transfer warmed its links.
        json.loads(raw.next_line(120, "warm-up round"))

        sluice_s, raw_s, failures = [], [], []
        for i in range(args.rounds):
            r = client.step(transfer)
            if r["ok"]:
                sluice_s.append(r["seconds"])
            else:
                failures.append(r)
            raw.send_line("round")
            raw_s.append(json.loads(raw.next_line(120, "round"))["seconds"])
            print("round {:3d}: sluice {:.3f} s, raw TCP {:.3f} s".format(
                i, sluice_s[-1] if r["ok"] else float("nan"), raw_s[-1]), flush=True)
        cluster.stop()

    result = dict(one_way_ms=args.one_way_ms, mib_each_way=args.mib, failures=failures,
                  sluice=_summary(sluice_s) if sluice_s else None, raw_tcp=_summary(raw_s))
    if sluice_s:
        result["ratio"] = {k: round(result["sluice"][k] / result["raw_tcp"][k], 2)
                           for k in ("p50", "p90", "max")}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
