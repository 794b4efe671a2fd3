"""Where the gateway spends its time under load: py-spy samples it while wrk drives it.

    python bench/profile_gateway.py [--mode json|stream] [--seconds 8] [--connections 16]

Starts nginx and the gateway (auth on) as in ``run.py``, runs ``wrk`` against the gateway and, at
the same time, ``py-spy record`` on the gateway process (needs ptrace rights: root or
CAP_SYS_PTRACE). Prints the functions with the most samples on top of the stack (self) and on the
stack at all (inclusive). The collapsed stacks are kept in ``--out`` for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# Run as a script from any directory: the checkout (bench/, tests/support) and its src/ come first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nginx import nginx_upstream
from tests.support.servers import gateway_process

from bench.load import run_wrk
from bench.report import table
from bench.workload import HEADERS, nginx_config, request_body, use_this_checkout


def function_of(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (path/file.py)``: samples of one function add up."""
    return re.sub(r":\d+\)$", ")", frame)


def package_of(frame: str) -> str:
    found = re.search(r"\(([^/:)]+)", frame)
    return found.group(1) if found else frame


def summarize(collapsed: str, top: int) -> dict[str, list[list[str]]]:
    """Self samples per function and per package, inclusive samples per function, as table rows."""
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_of(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        packages[package_of(frames[-1])] += count
        for frame in set(frames):
            total[frame] += count

    def rows(counter: collections.Counter[str]) -> list[list[str]]:
        return [[f"{n / max(samples, 1):6.1%}", frame[:150]] for frame, n in counter.most_common(top)]

    return {"self by package": rows(packages), "self by function": rows(own), "inclusive": rows(total)}


def main() -> None:
    use_this_checkout()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("gateway-profile.txt"))
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the gateway (repeatable)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    body = request_body(args.mode)
    env = dict(pair.split("=", 1) for pair in args.env)
    with (
        tempfile.TemporaryDirectory(prefix="lattice-profile-") as tmp,
        nginx_upstream() as ng,
        gateway_process(nginx_config(ng), env={"LATTICE_LEDGER_PATH": f"{tmp}/ledger.sqlite3", **env}) as gw,
    ):
        url = gw.url + "/v1/chat/completions"
        run_wrk(url, body, HEADERS, args.connections, 1)  # warm-up
        load = threading.Thread(target=run_wrk, args=(url, body, HEADERS, args.connections, args.seconds + 2))
        load.start()
        command = [
            py_spy,
            "record",
            "--pid",
            str(gw.proc.pid),
            "--duration",
            str(args.seconds),
            "--format",
            "raw",
            "--rate",
            "250",
        ]
        command += ["--nonblocking", "--output", str(args.out)]
        subprocess.run(command, check=True, capture_output=True, timeout=args.seconds + 30)
        load.join()
    print(f"py-spy on the gateway, {args.mode}, c={args.connections}, {args.seconds} s (stacks in {args.out})")
    for title, rows in summarize(args.out.read_text(encoding="utf-8"), args.top).items():
        print()
        print(table([title.split()[0], title], rows))


if __name__ == "__main__":
    main()
