"""Hostile clients as a process of their own: many idle sockets, or many connections dribbling a
request head a byte at a time. Run by tests as ``python -m tests.support.floods MODE …``; prints
one JSON line of what happened and exits by itself (every loop is bounded by ``--seconds``).

    idle    --port P --count N --seconds S [--source A]   open N connections, send nothing, hold them
    dribble --port P --count N --seconds S --interval I [--source A]   send a head a byte every I seconds

Connections go to 127.0.0.1 from the loopback address ``--source`` (127.0.0.1 unless given).

The report: how many connected, how many the server closed, and (``dribble``) after how many
seconds it closed them (min / max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import time

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux
HEAD = b"GET /v1/models HTTP/1.1\r\nHost: flood\r\nX-Dribble: " + b"d" * 4000


Link = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int, source: str, gate: asyncio.Semaphore) -> Link | None:
    """One connection to 127.0.0.1:``port`` from ``source`` (another loopback address gives the
    flood a port range of its own: one address's ephemeral ports do not hold 20,000 sockets to
    one server port). The port is picked at connect time, as for any client."""
    async with gate:  # a bounded number of handshakes at once: the listen backlog is not flooded
        sock = socket.socket()
        try:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
            sock.setblocking(False)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 10)
            return await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError):
            sock.close()
            return None


async def _closed_after(reader: asyncio.StreamReader, started: float, seconds: float) -> float | None:
    """Seconds until the server closed the connection (EOF or reset), or None if it held."""
    try:
        await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:  # (an OSError too: caught first)
        return None
    except OSError:
        pass  # reset by the server
    return time.monotonic() - started


async def idle(port: int, source: str, count: int, seconds: float) -> dict[str, object]:
    gate = asyncio.Semaphore(256)
    started = time.monotonic()
    links = await asyncio.gather(*(_connect(port, source, gate) for _ in range(count)))
    opened = [link for link in links if link is not None]
    connected_in = time.monotonic() - started
    left = max(0.1, seconds - connected_in)
    closed = await asyncio.gather(*(_closed_after(reader, started, left) for reader, _ in opened))
    for _, writer in opened:
        writer.transport.abort()
    return {
        "connected": len(opened),
        "failed": count - len(opened),
        "closed_by_server": sum(c is not None for c in closed),
        "connect_seconds": round(connected_in, 2),
    }


async def _dribble(link: Link, interval: float, seconds: float) -> float | None:
    reader, writer = link
    started = time.monotonic()
    closing = asyncio.ensure_future(_closed_after(reader, started, seconds))
    for byte in HEAD:
        if closing.done():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except OSError:
            break
        await asyncio.wait([closing], timeout=interval)
    result = await closing
    writer.transport.abort()
    return result


async def dribble(port: int, source: str, count: int, seconds: float, interval: float) -> dict[str, object]:
    gate = asyncio.Semaphore(256)
    links = await asyncio.gather(*(_connect(port, source, gate) for _ in range(count)))
    opened = [link for link in links if link is not None]
    closed = await asyncio.gather(*(_dribble(link, interval, seconds) for link in opened))
    times = [c for c in closed if c is not None]
    return {
        "connected": len(opened),
        "failed": count - len(opened),
        "closed_by_server": len(times),
        "closed_after_min": round(min(times), 2) if times else None,
        "closed_after_max": round(max(times), 2) if times else None,
    }


def shares(total: int) -> list[int]:
    """``total`` sockets split among flood processes, each within the open-file limit it will
    inherit from the caller (a hard limit it cannot raise: mlx_lm sets 4096 when imported)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    each = total if hard == resource.RLIM_INFINITY else max(1, min(10_000, hard - 256))
    return [min(each, total - start) for start in range(0, total, each)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("idle", "dribble"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--source", default="127.0.0.1", help="loopback address to connect from")
    args = parser.parse_args()
    # The limit the flood inherits may have been lowered (mlx_lm sets 2048/4096 when imported):
    # raise it, the hard one too where allowed (root), to fit the flood.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.count + 256
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if args.mode == "idle":
        report = asyncio.run(idle(args.port, args.source, args.count, args.seconds))
    else:
        report = asyncio.run(dribble(args.port, args.source, args.count, args.seconds, args.interval))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
