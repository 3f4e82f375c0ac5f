"""Raw TCP peer of the long-link benchmark: the same bytes a Sluice transfer step moves, over
one plain socket, to compare step times against on the same emulated link in the same run.

    tcp_pingpong.py --serve 10.77.0.3:7100 --bytes 16777216
        Accepts connections; on each, reads --bytes and sends --bytes back, forever.
        Prints `PINGPONG_READY listen=host:port`.
    tcp_pingpong.py --connect 10.77.0.9:40000 --bytes 16777216
        Connects once (the connection stays open, warm, as Sluice's are). For each line
        "round" on stdin: sends --bytes, reads --bytes back, prints {"seconds": s}.

Both stop when stdin reaches end of file (the harness holds the other end).
"""

import argparse
import json
import socket
import sys
import threading
import time

_CHUNK = 1 << 20


def _split(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def _read_exactly(sock, n):
    view = memoryview(bytearray(_CHUNK))
    left = n
    while left > 0:
        got = sock.recv_into(view, min(left, _CHUNK))
        if got == 0:
            raise ConnectionError("peer closed with {} bytes to go".format(left))
        left -= got


def _serve(address, size):
    listener = socket.create_server(address)
    host, port = listener.getsockname()[:2]
    print("PINGPONG_READY listen={}:{}".format(host, port), flush=True)
    payload = bytes(size)

    def handle(conn):
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while True:
                    _read_exactly(conn, size)
                    conn.sendall(payload)
            except (ConnectionError, OSError):
                pass

    def accept_loop():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sys.stdin.buffer.read()  # The lifeline.


def _connect(address, size):
    sock = socket.create_connection(address, timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = bytes(size)
    print("PINGPONG_READY connected", flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            continue
        start = time.monotonic()
        sock.sendall(payload)
        _read_exactly(sock, size)
        print(json.dumps({"seconds": time.monotonic() - start}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", type=_split)
    mode.add_argument("--connect", type=_split)
    parser.add_argument("--bytes", type=int, required=True)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.bytes)
    else:
        _connect(args.connect, args.bytes)


if __name__ == "__main__":
    main()
