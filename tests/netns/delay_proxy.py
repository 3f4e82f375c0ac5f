"""A fault-injecting TCP proxy: forwards every connection accepted on --listen to --target and
delays each chunk by --delay_ms in each direction, so a link through it has an RTT of about
twice that. The kernel here has no netem, so this is how the tests emulate a slow link.

    delay_proxy.py --listen 10.77.0.9:0 --target 10.77.0.4:7000 --delay_ms 300

Prints `PROXY_READY listen=host:port` on stdout once listening; stops on SIGTERM or when stdin
reaches end of file (the harness holds the other end, so the proxy dies with it).

The delay is a one-way latency, not a throughput limit: chunks are read as they come and each
is written once its due time has passed, in order, so a stream keeps its bandwidth.
"""

import argparse
import asyncio
import signal
import sys

_CHUNK = 64 * 1024
# Chunks waiting for their due time per direction; a full queue stops reading (back-pressure).
_MAX_QUEUED_CHUNKS = 1024


async def _read_side(reader, queue, delay_s):
    """Reads chunks and queues each with the time it may be written; None marks end of stream."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            await queue.put((loop.time() + delay_s, data))
    except (ConnectionError, OSError):
        pass
    await queue.put((loop.time() + delay_s, None))


async def _write_side(writer, queue):
    """Writes queued chunks once due; half-closes the peer at end of stream."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # The injected delay itself.
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def _pipe(reader, writer, delay_s):
    queue = asyncio.Queue(maxsize=_MAX_QUEUED_CHUNKS)
    await asyncio.gather(_read_side(reader, queue, delay_s), _write_side(writer, queue))


async def _serve_connection(client_reader, client_writer, target, delay_s):
    host, port = target
    try:
        target_reader, target_writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), timeout=10)
    except (OSError, asyncio.TimeoutError):
        client_writer.close()  # The target is down: the client sees a reset, as without us.
        return
    try:
        await asyncio.gather(_pipe(client_reader, target_writer, delay_s),
                             _pipe(target_reader, client_writer, delay_s))
    except asyncio.CancelledError:
        pass  # The proxy is stopping; asyncio would report a cancelled handler as an error.
    finally:
        for w in (client_writer, target_writer):
            w.close()


def _split_address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected host:port, got {!r}".format(text))
    return host, int(port)


async def _main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The lifeline: end of file on stdin means the harness went away.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(4096) or stop.set())
    delay_s = args.delay_ms / 1000.0
    host, port = args.listen
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, args.target, delay_s), host, port)
    bound = server.sockets[0].getsockname()
    print("PROXY_READY listen={}:{}".format(bound[0], bound[1]), flush=True)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_split_address, required=True)
    parser.add_argument("--target", type=_split_address, required=True)
    parser.add_argument("--delay_ms", type=float, required=True, help="one-way delay")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
