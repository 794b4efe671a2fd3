"""What the benchmark prints: the machine it ran on and fixed-width tables."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGES = ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "aiohttp", "httpx", "orjson", "pydantic")


def _tool_version(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, check=False)
    except OSError:
        return "missing"
    text = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
    return text[0] if text else "?"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine_lines() -> list[str]:
    from local_lattice import __version__

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "")
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    packages = ", ".join(f"{p} {_package_version(p)}" for p in PACKAGES)
    return [
        f"machine : {platform.system()} {platform.machine()}, {cpus} cpus ({model or 'unknown cpu'}), load {load}",
        f"python  : {sys.version.split()[0]} ({sys.executable})",
        f"tools   : {_tool_version(['nginx', '-v'])}; {_tool_version(['wrk', '-v'])}",
        f"gateway : local-lattice {__version__}",
        f"packages: {packages}",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    return "\n".join(out)


def write_section(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->`` in
    ``path`` with ``text`` (appending the marked block when the markers are missing)."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    doc = path.read_text(encoding="utf-8")
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        head, _, rest = doc.partition(begin)
        _, _, tail = rest.partition(end)
        doc = head + block + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(doc, encoding="utf-8")
