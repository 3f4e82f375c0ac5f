"""The harness itself, with plain TCP instead of Sluice: hosts reach each other, each fault
does what it says and heals, the proxy delays, and closing leaves nothing behind."""

import subprocess
import sys
import time

import pytest

import netns_harness as nh

# Echoes one line per connection; prints READY once listening.
_ECHO = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
print("READY", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100)); c.close()
"""

# Round trip to argv[1]:argv[2]: prints the seconds, or the error's name.
_PROBE = """
import socket, sys, time
start = time.monotonic()
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"x"); assert c.recv(10) == b"x"
    print(time.monotonic() - start)
except Exception as e:
    print(type(e).__name__)
"""


@pytest.fixture
def plain_net():
    try:
        nh.check_prerequisites()
    except nh.Unavailable as e:
        pytest.skip("network namespaces unavailable: {}".format(e))
    with nh.Network() as net:
        yield net


def echo_server(net, host, port=9000):
    proc = net.start("echo-" + host.name, host, [sys.executable, "-c", _ECHO, host.address,
                                                 str(port)])
    proc.wait_for_line("READY", timeout=20)
    return "{}:{}".format(host.address, port)


def probe(host, address, timeout=1.0):
    """The round trip in seconds from `host` to `address`, or the error's name."""
    ip, port = address.rsplit(":", 1)
    out = subprocess.run(host.command([sys.executable, "-c", _PROBE, ip, port, str(timeout)]),
                         capture_output=True, text=True, timeout=timeout + 20).stdout.strip()
    try:
        return float(out)
    except ValueError:
        return out


def test_hosts_reach_each_other_and_partition_is_silent_then_heals(plain_net):
    a, b, c = (plain_net.add_host(n) for n in "abc")
    address = echo_server(plain_net, b)
    assert isinstance(probe(a, address), float)
    with plain_net.partition(a, b):
        assert probe(a, address) == "TimeoutError"  # Silent: no reset, no refusal.
        assert isinstance(probe(c, address), float)  # Only a<->b is cut.
    assert isinstance(probe(a, address), float)


def test_loss_rules_are_applied_and_removed(plain_net):
    a, b = plain_net.add_host("a"), plain_net.add_host("b")
    address = echo_server(plain_net, b)

    def rules(host):
        return subprocess.run(host.command(["iptables", "-S", "INPUT"]), capture_output=True,
                              text=True, timeout=10).stdout
    with plain_net.loss(a, b, 1.0):  # Certain loss: nothing gets through.
        assert probe(a, address) == "TimeoutError"
    with plain_net.loss(a, b, 0.2) as fault:
        assert "--probability 0.2" in rules(a) and "--probability 0.2" in rules(b)
    assert fault.healed and "statistic" not in rules(a) + rules(b)
    assert isinstance(probe(a, address), float)


def test_cut_takes_a_host_off_the_network_until_restored(plain_net):
    a, b = plain_net.add_host("a"), plain_net.add_host("b")
    address = echo_server(plain_net, b)
    fault = plain_net.cut(b)
    assert probe(a, address) == "TimeoutError"
    fault.heal()
    nh.wait_for(lambda: isinstance(probe(a, address), float), 10, "the link to come back")


def test_delay_proxy_adds_its_delay_each_way(plain_net):
    a, b, wan = (plain_net.add_host(n) for n in ("a", "b", "wan"))
    address = echo_server(plain_net, b)
    proxy = nh.DelayProxy(plain_net, wan, address, delay_ms=150)
    rtt = probe(a, proxy.address, timeout=5)
    assert isinstance(rtt, float) and 0.3 <= rtt < 1.0, rtt


def test_close_stops_processes_and_deletes_namespaces():
    try:
        nh.check_prerequisites()
    except nh.Unavailable as e:
        pytest.skip("network namespaces unavailable: {}".format(e))
    net = nh.Network()
    host = net.add_host("a")
    echo_server(net, host)
    proc = net.processes[0]
    statuses = net.close()
    assert not proc.alive() and statuses == {"echo-a": -15}
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             timeout=10).stdout
    assert net.id not in listing
    assert net.close() == {}  # Idempotent.


def test_wait_for_polls_until_true_or_deadline():
    start = time.monotonic()
    assert nh.wait_for(lambda: time.monotonic() - start > 0.2, 5, "0.2 s") is True
    with pytest.raises(TimeoutError, match="never"):
        nh.wait_for(lambda: False, 0.2, "never")
