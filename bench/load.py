"""Load generation: one ``wrk`` run against one URL, and a time-to-first-byte probe for streams.

``wrk`` runs with one thread (the machines have two cores, shared with the servers under test) and a
generated Lua script that sets the POST body and headers and prints its summary in one parseable
line, so nothing depends on wrk's human-oriented output.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

_RESULT = re.compile(rb"^WRKRESULT (.*)$", re.MULTILINE)

LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d p50_us=%d p99_us=%d socket_errors=%d status_errors=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# With a request budget the one wrk thread says so after that many answers and stops sending;
# ``run_wrk`` then interrupts wrk, which prints its summary for the time it really ran.
LUA_BUDGET = """\
local answered = 0
response = function(status, headers, body)
  answered = answered + 1
  if answered == {budget} then
    io.write("WRKBUDGET\\n")
    io.flush()
    wrk.thread:stop()
  end
end
"""


def lua_script(body: bytes, headers: Mapping[str, str], max_requests: int | None = None) -> str:
    text = body.decode()
    if "]==]" in text:
        raise ValueError("body cannot be embedded in a Lua long string")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = LUA.format(body=text, headers=lines)
    return script if max_requests is None else script + LUA_BUDGET.format(budget=max_requests)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    return found


def run_wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    connections: int,
    seconds: float,
    max_requests: int | None = None,
) -> WrkResult:
    """One bounded wrk run (``seconds``, or until ``max_requests`` answers if that comes first);
    raises if wrk fails or prints no summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(body, headers, max_requests))
    try:
        command = [wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
        command += ["-s", script.name, url]
        if max_requests is None:
            done = subprocess.run(command, capture_output=True, timeout=seconds + 30, check=False)
            returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
        else:
            returncode, stdout, stderr = _until_budget(command, seconds + 30)
    finally:
        Path(script.name).unlink(missing_ok=True)
    found = _RESULT.search(stdout)
    if returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({returncode}): {stdout.decode()[-500:]} {stderr.decode()}")
    fields = dict(pair.split("=") for pair in found.group(1).decode().split())
    return WrkResult(
        requests=int(fields["requests"]),
        seconds=int(fields["duration_us"]) / 1e6,
        p50_ms=int(fields["p50_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000,
        errors=int(fields["socket_errors"]) + int(fields["status_errors"]),
    )


def _until_budget(command: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run wrk until its script reports the request budget spent, then interrupt it (SIGINT makes
    wrk stop and print its summary, ``done`` included)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(b"WRKBUDGET"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, b"".join(lines) + out, err


# --- time to first byte ----------------------------------------------------------------------------


async def _first_byte(session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        first = await resp.content.readany()
        elapsed = time.perf_counter() - started
        if resp.status != 200 or not first:
            raise RuntimeError(f"{url} answered {resp.status} {first[:200]!r}")
        async for _ in resp.content.iter_any():  # drain so the connection is reused
            pass
    return elapsed


async def _ttfb(
    targets: Mapping[str, str], body: bytes, headers: Mapping[str, str], rounds: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in targets}
    connector = aiohttp.TCPConnector(limit=len(targets) * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(max(5, rounds // 10)):  # warm connections and caches; not counted
            for url in targets.values():
                await _first_byte(session, url, body, headers)
        for _ in range(rounds):  # interleaved, so drift on a shared machine hits every target alike
            for name, url in targets.items():
                samples[name].append(await _first_byte(session, url, body, headers))
    return samples


def measure_ttfb(
    targets: Mapping[str, str], body: bytes, headers: Mapping[str, str], rounds: int
) -> dict[str, tuple[float, float]]:
    """Median and p90 time to the first body byte of a streamed answer, in ms, per target name."""
    samples = asyncio.run(_ttfb(targets, body, headers, rounds))
    return {name: (statistics.median(s) * 1000, quantile(s, 0.9) * 1000) for name, s in samples.items()}


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
