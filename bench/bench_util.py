"""Helpers the Python benchmarks share (each runs as `python3 bench/<name>.py`, so this module
is on its path)."""

import socket


def free_port():
    """A loopback port free now, for a peer that must be told its port before it binds."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def load_average():
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    return " ".join(open("/proc/loadavg").read().split()[:3])
