"""Fault scenarios of issue 13 on a real network: master, workers and clients on hosts of
their own (network namespaces on one bridge, netns_harness.py), faults injected with iptables,
link state and a delaying proxy. Each test records what it saw (error texts, timings) in
results.jsonl (netns_harness.record) and stays within about a minute, failing or not.

Short form by default; SLUICE_NETNS_FULL=1 runs more repetitions and longer windows.
"""

import time

import netns_harness as nh

FULL = nh.full_form()


def assert_healthy(cluster):
    problems = cluster.check_health()
    assert not problems, "\n".join(problems) + "\n" + cluster.logs()


def assert_clean_shutdown(cluster):
    """Every server stops on SIGTERM, promptly and with status 0, whatever steps it held."""
    stopped = cluster.stop(timeout=10)
    nh.record("shutdown", servers={name: dict(status=s, seconds=round(t, 2), sigkill=k)
                                   for name, (s, t, k) in stopped.items()})
    bad = {name: v for name, v in stopped.items() if v[0] != 0 or v[2]}
    assert not bad, "servers that did not stop cleanly on SIGTERM (status, seconds, SIGKILLed):" \
        " {}\n{}".format(bad, cluster.logs())


def ok_step(client, command=None, timeout=None):
    result = client.step(command or {"cmd": "train"}, timeout)
    assert result["ok"], "step failed: {}".format(result)
    return result


def retry_until_ok(client, command, within_s):
    """Repeats `command` until a step succeeds; returns (seconds taken, failures seen). Each try
    is bounded by the client's step deadline; the whole by `within_s` plus one try."""
    start = time.monotonic()
    failures = []
    while True:
        result = client.step(command)
        if result["ok"]:
            return time.monotonic() - start, failures
        failures.append("{}: {}".format(result["error_type"], result["error"][:300]))
        assert time.monotonic() - start < within_s, \
            "no successful step within {} s; failures: {}".format(within_s, failures[-3:])


def test_killing_a_worker_mid_step_never_crashes_the_survivor(net, server_binary):
    """Issue 13: the surviving worker crashed (use-after-free in RecvOp's cancellation
    callback) in 5 of 10 runs when its peer died mid-step. Each round kills the worker that is
    computing while the other waits in a receive for its result, restarts it, and checks that
    the survivor lives and the next step succeeds."""
    rounds = 20 if FULL else 5
    rejoin_limit_s = 15.0
    cluster = nh.Cluster(net, server_binary)
    client = nh.Client(net, cluster.target, step_timeout_s=20)
    ok_step(client, {"cmd": "init"})
    slow = {"cmd": "slow", "size": 768, "reps": 24}
    for victim in (0, 1):  # Register both slow graphs before any kill.
        ok_step(client, dict(slow, heavy_on=victim))
    observed = []
    for r in range(rounds):
        victim = (r + 1) % 2  # Alternate: each worker is the survivor in turn.
        survivor = cluster.workers[1 - victim]
        proc = cluster.workers[victim].process
        cpu_before = proc.cpu_seconds()
        client.send(dict(slow, heavy_on=victim))
        # Mid-step: the victim has spent 0.15 s of CPU on this step's matmuls.
        nh.wait_for(lambda: proc.cpu_seconds() - cpu_before >= 0.15, 30,
                    "worker{} to compute".format(victim))
        cluster.workers[victim].kill()
        killed = client.reply(timeout=60)
        assert survivor.alive(), "worker{} crashed after its peer was killed:\n{}".format(
            survivor.task, cluster.logs())
        restarted = time.monotonic()
        cluster.restart_worker(victim)
        listening_s = time.monotonic() - restarted
        # A restarted worker has lost its variables: init is the first step that must succeed.
        rejoin_s, failures = retry_until_ok(client, {"cmd": "init"}, rejoin_limit_s)
        ok_step(client)
        observed.append(dict(victim=victim, killed_step_ok=killed["ok"],
                             killed_step_error=(killed["error"] or "")[:300],
                             killed_step_seconds=round(killed["seconds"], 2),
                             restart_listening_s=round(listening_s, 2),
                             rejoin_s=round(rejoin_s, 2), failures_before_rejoin=len(failures)))
        assert_healthy(cluster)
    nh.record("kill_mid_step", rounds=observed)
    assert_clean_shutdown(cluster)


def test_partition_between_workers_ends_the_step_and_heals(net, server_binary):
    """Issue 13: a worker<->worker partition left the step running on both workers for good
    (the client gave up at its deadline). The step must end with an error naming both ends of
    the edge well before the client's deadline, and the next step after healing succeeds.

    The workers ping their peers every 3 s (--peer_keepalive_ms, default 10 s) so that the
    test is short: what is tested is that the link's failure ends the step everywhere."""
    deadline_s = 30.0
    cluster = nh.Cluster(net, server_binary, worker_flags=["--peer_keepalive_ms=3000"])
    client = nh.Client(net, cluster.target, step_timeout_s=deadline_s)
    ok_step(client, {"cmd": "init"})
    ok_step(client)  # The workers' links are up before the partition.
    w0, w1 = (w.host for w in cluster.workers)
    with net.partition(w0, w1):
        failed = client.step({"cmd": "train"})
    healed = client.step({"cmd": "train"})
    nh.record("partition_workers", client_deadline_s=deadline_s,
              partitioned_step=failed, first_step_after_heal=healed)
    assert not failed["ok"], "a step across a partition succeeded: {}".format(failed)
    assert failed["seconds"] < deadline_s / 2, \
        "the partitioned step ended after {:.1f} s ({}: {}), not well before the client's " \
        "{:.0f} s deadline".format(failed["seconds"], failed["error_type"], failed["error"],
                                   deadline_s)
    assert "/job:worker/task:0" in failed["error"] and "/job:worker/task:1" in failed["error"], \
        "the error does not name both ends of the edge: {}".format(failed["error"])
    assert healed["ok"], "the first step after healing failed: {}\n{}".format(
        healed, cluster.logs())
    assert_healthy(cluster)
    assert_clean_shutdown(cluster)


def test_cluster_recovers_after_packet_loss_between_workers(net, server_binary):
    """Issue 13: after 20% loss between workers the data plane stayed blocked and every later
    step hung until restart. Steps moving 4 MiB each way run under 20% loss (they may fail or
    be slow); once the loss is cleared the next step must succeed promptly."""
    deadline_s = 15.0
    loss_steps = 20 if FULL else 4
    loss_phase_s = 90.0 if FULL else 25.0
    recovery_limit_s = 10.0
    transfer = {"cmd": "transfer", "elements": 1 << 20}
    cluster = nh.Cluster(net, server_binary)
    client = nh.Client(net, cluster.target, step_timeout_s=deadline_s)
    ok_step(client, {"cmd": "init"})
    ok_step(client, transfer)
    under_loss = []
    w0, w1 = (w.host for w in cluster.workers)
    with net.loss(w0, w1, 0.2):
        start = time.monotonic()
        while len(under_loss) < loss_steps and time.monotonic() - start < loss_phase_s:
            r = client.step(transfer if len(under_loss) % 2 == 0 else {"cmd": "train"})
            under_loss.append(dict(ok=r["ok"], seconds=round(r["seconds"], 2),
                                   error=(r["error"] or "")[:300]))
    after = [client.step(transfer), client.step({"cmd": "train"})]
    nh.record("loss_20pct_workers", under_loss=under_loss, after_clear=after)
    for r in after:
        assert r["ok"] and r["seconds"] < recovery_limit_s, \
            "after the loss cleared a step took {:.1f} s, ok={} ({}: {}); limit {} s\n{}".format(
                r["seconds"], r["ok"], r["error_type"], r["error"], recovery_limit_s,
                cluster.logs())
    assert_healthy(cluster)
    assert_clean_shutdown(cluster)


def test_slow_link_to_a_worker_is_not_taken_for_a_lost_worker(net, server_binary):
    """Issue 13: the heartbeat deadline equals its 500 ms interval, so a link with an RTT over
    500 ms marked a healthy worker lost. Here every connection to worker1's control port goes
    through a proxy adding 300 ms each way (RTT >= 600 ms): the master's heartbeats and
    RunGraph calls, and worker0's flow-control stream to worker1 (a peer's control address
    comes from the master's spec); worker0's data-plane pushes go straight. Steps run for three
    heartbeat timeouts and must all succeed."""
    one_way_ms = 300
    window_s = 45.0 if FULL else 16.0  # The default --heartbeat_timeout_ms is 5 s.
    cluster = nh.Cluster(net, server_binary, start=False)
    cluster.start_workers()
    proxy = nh.DelayProxy(net, net.add_host("wan"), cluster.workers[1].control_address,
                          delay_ms=one_way_ms)
    cluster.worker_address[1] = proxy.address
    cluster.start_master()
    client = nh.Client(net, cluster.target, step_timeout_s=30)
    init = client.step({"cmd": "init"})
    start = time.monotonic()
    steps = []
    while time.monotonic() - start < window_s:
        r = client.step({"cmd": "train"})
        steps.append(r)
        if not r["ok"] and len([s for s in steps if not s["ok"]]) >= 3:
            break  # Enough to see what happens; keep the test short.
    durations = [s["seconds"] for s in steps if s["ok"]]
    failures = [s for s in steps if not s["ok"]]
    nh.record("rtt_600ms_master_worker1", one_way_ms=one_way_ms, init=init,
              steps=len(steps), ok=len(durations), p50_s=nh.percentile(durations, 50),
              max_s=max(durations) if durations else None,
              first_failure_at_s=round(sum(s["seconds"] for s in steps[:steps.index(failures[0])]),
                                       2) if failures else None,
              failures=[dict(error_type=f["error_type"], error=f["error"][:300])
                        for f in failures])
    assert init["ok"], "init failed over the slow link: {}".format(init)
    assert not failures, "{} of {} steps failed over a {} ms RTT link; first: {}: {}".format(
        len(failures), len(steps), 2 * one_way_ms, failures[0]["error_type"],
        failures[0]["error"])
    assert_healthy(cluster)
    assert_clean_shutdown(cluster)


def test_link_cut_to_a_worker_fails_steps_then_heals(net, server_binary):
    """A worker's link goes down (ip link set down): a step needing it fails naming it within
    the heartbeat timeout (5 s by default) plus a margin; once the link is back the worker,
    same incarnation, must be usable again without restarting anything."""
    deadline_s = 30.0
    cluster = nh.Cluster(net, server_binary)
    client = nh.Client(net, cluster.target, step_timeout_s=deadline_s)
    ok_step(client, {"cmd": "init"})
    ok_step(client)
    with net.cut(cluster.workers[1].host):
        failed = client.step({"cmd": "train"})
    heal_s, failures = retry_until_ok(client, {"cmd": "train"}, 10.0)
    nh.record("link_cut_worker1", cut_step=failed, heal_s=round(heal_s, 2),
              failures_after_restore=failures[:3])
    assert not failed["ok"], failed
    assert failed["seconds"] < 10.0 and "/job:worker/task:1" in failed["error"], failed
    assert_healthy(cluster)
    assert_clean_shutdown(cluster)


def test_concurrent_clients_all_progress(net, server_binary):
    """Issue 13: with the default --credit_window=4, of 8 or 12 concurrent clients one or two
    progressed and the rest stalled 30 s at a time. Twelve clients, each on its own session and
    variables, train for a window: every one must complete steps throughout it."""
    clients_n = 12
    window_s = 60.0 if FULL else 15.0
    min_steps = 3
    max_stall_s = 10.0
    cluster = nh.Cluster(net, server_binary)
    host = net.add_host("clients")
    clients = [nh.Client(net, cluster.target, name="client{}".format(i), host=host,
                         step_timeout_s=30, prefix="c{}_".format(i), wait=False)
               for i in range(clients_n)]
    for c in clients:
        c.wait_ready(timeout=120)
    for c in clients:
        c.send({"cmd": "init"})
    for c in clients:
        assert c.reply(timeout=60)["ok"]
    for c in clients:  # All start their window together (each is waiting on its stdin).
        c.send({"cmd": "loop", "seconds": window_s})
    per_client = [c.reply(timeout=window_s + 60)["steps"] for c in clients]
    durations = [s[1] for steps in per_client for s in steps if s[2]]
    summary = []
    for i, steps in enumerate(per_client):
        ends = [0.0] + [s[0] for s in steps if s[2]] + [window_s]
        summary.append(dict(client=i, ok=sum(1 for s in steps if s[2]),
                            failed=sum(1 for s in steps if not s[2]),
                            longest_stall_s=round(max(b - a for a, b in zip(ends, ends[1:])), 2),
                            first_error=next((s[3][:200] for s in steps if not s[2]), None)))
    nh.record("concurrent_clients", clients=clients_n, window_s=window_s,
              total_steps=len(durations), p50_s=nh.percentile(durations, 50),
              p99_s=nh.percentile(durations, 99), per_client=summary)
    starved = [s for s in summary if s["ok"] < min_steps or s["longest_stall_s"] > max_stall_s
               or s["failed"]]
    assert not starved, "clients that did not progress evenly (at least {} steps, no stall " \
        "over {} s, no failure): {}".format(min_steps, max_stall_s, starved)
    assert_healthy(cluster)
    assert_clean_shutdown(cluster)
