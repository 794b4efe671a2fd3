"""``lattice demo``: the original's 60-second demo against a running gateway — list the models, send
the same request to ``role:fast`` and ``role:coder`` and show which model each resolved to, then ask
``/swarm/vote`` for a judged answer. Output goes to a rich console; the exit code says whether every
step answered."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from local_lattice.console.client import GatewayClient, Reply

PROMPT = "Write a Python function that returns the n-th Fibonacci number."
ROLES = ("role:fast", "role:coder")


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _answer_text(reply: Reply) -> str:
    try:
        return str(reply.body["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        return ""


def _step(console: Console, number: int, title: str) -> None:
    console.print(Text(f"\n{number}. {title}", style="bold"))


async def _models(console: Console, client: GatewayClient) -> bool:
    _step(console, 1, "GET /v1/models — what is really available")
    reply = await client.get("/v1/models")
    if reply.status != 200:
        console.print(Text(f"   failed: {reply.error}", style="red"))
        return False
    table = Table(show_edge=False)
    for column in ("model", "backend", "kind", "loaded"):
        table.add_column(column)
    for model in reply.body.get("data", []):
        loaded = model.get("loaded")
        shown = "?" if loaded is None else ("yes" if loaded else "no")
        table.add_row(model["id"], str(model.get("owned_by")), str(model.get("kind", "")), shown)
    console.print(table)
    return True


async def _roles(console: Console, client: GatewayClient, prompt: str, max_tokens: int) -> bool:
    _step(console, 2, f"the same call to {' and '.join(ROLES)} — each resolves to a model that is there")
    ok = True
    for role in ROLES:
        body = {"model": role, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        reply = await client.post("/v1/chat/completions", body)
        if reply.status != 200:
            console.print(Text(f"   {role:<12} failed ({reply.status}): {reply.error}", style="red"))
            ok = False
            continue
        routed = reply.headers.get("x-model-routed-to", "?")
        console.print(f"   {role:<12} → {routed}  ({reply.seconds:.2f} s)")
        console.print(Text(f"   {'':<12}   {reply.headers.get('x-model-resolution', '')}", style="dim"))
        console.print(f"   {'':<12}   {_excerpt(_answer_text(reply))}")
    return ok


async def _vote(console: Console, client: GatewayClient, prompt: str, max_tokens: int, judge: str | None) -> bool:
    _step(console, 3, "POST /swarm/vote — both answer, a judge picks the best")
    body: dict[str, Any] = {
        "models": list(ROLES),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if judge:
        body["judge"] = judge
    reply = await client.post("/swarm/vote", body)
    if reply.status != 200:
        console.print(Text(f"   failed ({reply.status}): {reply.error}", style="red"))
        return False
    swarm = reply.body.get("swarm") or {}
    strategy = swarm.get("strategy") or reply.headers.get("x-swarm-strategy", "?")
    console.print(f"   strategy {strategy}, winner {swarm.get('winner') or '?'}  ({reply.seconds:.2f} s)")
    for candidate in swarm.get("candidates") or []:
        state = "ok" if candidate.get("ok") else f"failed: {candidate.get('error')}"
        console.print(f"   candidate {candidate.get('agent_id')} → {candidate.get('routed_to')}: {state}")
    if swarm.get("rationale"):
        console.print(Text(f"   judge: {_excerpt(str(swarm['rationale']))}", style="dim"))
    console.print(f"   {_excerpt(_answer_text(reply))}")
    return True


async def run_demo(
    console: Console, url: str, api_key: str | None, prompt: str = PROMPT, max_tokens: int = 96,
    judge: str | None = None,
) -> int:  # fmt: skip
    """0 when every step answered, 1 otherwise."""
    console.print(Text(f"Local Lattice demo against {url}", style="bold"))
    async with GatewayClient(url, api_key) as client:
        if not await _models(console, client):
            return 1
        roles_ok = await _roles(console, client, prompt, max_tokens)
        vote_ok = await _vote(console, client, prompt, max_tokens, judge)
    console.print("\nSwap the loaded models and run it again: the calls stay the same.")
    return 0 if roles_ok and vote_ok else 1
