"""A sluice_server that runs out of file descriptors keeps both of its ports. gRPC 1.51 gave a
port up for good at the first accept that failed with EMFILE: after a burst of ~1,100 idle
connections the control port never accepted again, even once they had closed, and the master
took the worker for lost. The server now refuses connections (with a reset) while descriptors
are short, says so once, and serves again once they are back (distributed/accept_guard.h)."""
import os
import resource
import socket
import subprocess
import threading
import time

from sluice import distributed
from sluice._core import core as _core

LIMIT = 128  # The server's open-file limit, soft and hard, so that it runs out quickly.
# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its own
# SETTINGS frame (type 4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def answers(port):
    """Whether a gRPC server accepts a new connection on `port` and speaks HTTP/2 on it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(PREFACE)
            head = s.recv(9)
            return len(head) == 9 and head[3] == 4
    except OSError:
        return False


def was_reset(sock):
    """Whether the server reset this (non-blocking) connection."""
    try:
        sock.recv(1)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return False


def open_descriptors(pid):
    return len(os.listdir("/proc/{}/fd".format(pid)))


def wait_until(predicate, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.01)


def test_a_server_out_of_descriptors_keeps_listening_on_both_ports():
    proc = subprocess.Popen(
        [distributed.find_server_binary(), "--job=worker", "--task=0", "--port=0",
         "--data_port=0", "--exit_on_stdin_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT)))
    errors = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready and ready[0] == "SLUICE_SERVER_READY", ready
        fields = dict(f.split("=", 1) for f in ready[1:])
        reader.start()
        control = int(fields["control"].rsplit(":", 1)[1])
        data = int(fields["data"].rsplit(":", 1)[1])
        wait_until(lambda: answers(control) and answers(data), "the server never answered")
        # What the server holds when idle, plus the probes' connections it may not have closed.
        idle = open_descriptors(proc.pid) + 8
        for port in (control, data):
            # More connections than the server has descriptors: it accepts until it has none
            # left, then refuses the rest.
            burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(LIMIT + 32)]
            for s in burst:
                s.setblocking(False)
            wait_until(lambda: any(was_reset(s) for s in burst),
                       lambda: "port {}: the server refused no connection ({} descriptors open)"
                       .format(port, open_descriptors(proc.pid)))
            for s in burst:
                s.close()
            wait_until(lambda: open_descriptors(proc.pid) <= idle,
                       lambda: "the server kept {} descriptors after the burst closed".format(
                           open_descriptors(proc.pid)))
            wait_until(lambda: answers(port),
                       "port {} accepts no connection after the burst closed".format(port))
        assert proc.poll() is None
        assert any("out of file descriptors (limit {})".format(LIMIT) in line
                   for line in errors), errors
        # The control plane serves calls again (a worker's Inspect).
        assert _core._inspect("127.0.0.1:{}".format(control), 5.0)["task"] == "/job:worker/task:0"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0
