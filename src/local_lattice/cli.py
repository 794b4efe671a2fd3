"""Command line: parse, load the config, run the server. No gateway logic lives here."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from local_lattice import __version__
from local_lattice.config import Config, ConfigError, check_bind, load
from local_lattice.config_legacy import start_notes
from local_lattice.config_profiles import UnknownProfile, profile_env
from local_lattice.routing.policy import build_policy

app = typer.Typer(
    name="lattice",
    help="Local Lattice: a capability gateway for LLM compute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lattice {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Local Lattice: a capability gateway for LLM compute."""


def _fail(message: str) -> None:
    typer.echo(f"lattice: {message}", err=True)
    raise typer.Exit(2)


def load_config(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    profile: str | None = None,
    drain_seconds: float | None = None,
) -> Config:
    path = config_path or (Path(os.environ["LATTICE_CONFIG"]) if os.environ.get("LATTICE_CONFIG") else None)
    try:
        env = profile_env(profile, os.environ, Path.cwd()) if profile else os.environ
        config = load(path, env)
        if host is not None:
            config.server.host = host
        if port is not None:
            config.server.port = port
        if drain_seconds is not None:
            config.server.drain_seconds = drain_seconds
        check_bind(config.server)
        build_policy(config)  # a malformed roles or profiles file stops the start here, named
    except (ConfigError, UnknownProfile) as exc:
        _fail(str(exc))
    return config


def _grabbed(config: Config) -> Config:
    """``config`` with grab mode's model as a local path (an ``hf:`` repo fetched first); exits 1 if it
    cannot be had, as the original did."""
    from local_lattice.engines.download import DownloadError, grab_folder

    engines = config.engines
    if not engines.grab_model:
        return config
    try:
        engines.grab_model = grab_folder(engines.grab_model, engines.grab_cache)
    except DownloadError as exc:
        print(f"lattice: grab mode: {exc}", file=sys.stderr)
        raise SystemExit(1) from None  # run_server also runs outside typer (local-lattice-lmstudio)
    return config


def run_server(config: Config, banner: bool = True) -> None:
    from local_lattice import gc_settings
    from local_lattice.api import serving
    from local_lattice.api.app import create_app, redactor_for
    from local_lattice.api.connection_guard import ConnectionGuard, ConnectionLimits, guarded_protocol, raise_fd_limit
    from local_lattice.console.banner import print_banner
    from local_lattice.console.progress import LoadProgressDisplay
    from local_lattice.gateway import Gateway
    from local_lattice.observability.logs import configure
    from local_lattice.security.redact import install

    configure(config.observability.log_format)  # one handler; the request id on every line
    install(redactor_for(config))  # keys masked on every line
    for note in start_notes(os.environ):  # the original's variables that mean nothing here, said once
        logging.getLogger("lattice").warning("%s", note)
    config = _grabbed(config)
    if not config.server.log_timing:
        logging.getLogger("lattice.request").setLevel(logging.WARNING)

    async def ready(gateway: Gateway) -> None:
        if banner:
            await print_banner(gateway)
        gc_settings.settle()  # started: what exists now lives as long as the process

    server = config.server
    limits = raise_fd_limit(ConnectionLimits(server.max_connections, server.max_head_bytes, server.head_timeout))
    serving.run(
        create_app(config, on_ready=ready, progress=LoadProgressDisplay()),
        server.host,
        server.port,
        server.drain_seconds,
        guarded_protocol(ConnectionGuard(limits)),  # heads and connections capped
    )


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (or LATTICE_CONFIG).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides PORT).")] = None,
    profile: Annotated[
        str | None, typer.Option(help="lmstudio | mlx | stable[=safe|balanced|faster]; the environment wins.")
    ] = None,
    banner: Annotated[bool, typer.Option(help="Print the start banner (URL, auth, backends, models).")] = True,
    drain_seconds: Annotated[
        float | None,
        typer.Option(
            help="On SIGTERM, seconds running requests may take before they are ended (overrides "
            "LATTICE_DRAIN_SECONDS)."
        ),
    ] = None,
) -> None:
    """Run the gateway."""
    run_server(load_config(config, host, port, profile, drain_seconds), banner=banner)


_URL = typer.Option(help="A running gateway's root URL.")
_KEY = typer.Option("--api-key", envvar="MIDDLE_LAYER_API_KEY", help="Key for the gateway.")


@app.command()
def ps(
    url: Annotated[str, _URL] = "http://127.0.0.1:5001",
    api_key: Annotated[str | None, _KEY] = None,
) -> None:
    """Show a running gateway's backends, models, calls in flight and queues."""
    import asyncio

    from rich.console import Console

    from local_lattice.console.client import GatewayUnreachable
    from local_lattice.console.status import gateway_status

    try:
        code, view = asyncio.run(gateway_status(url, api_key))
    except GatewayUnreachable as exc:
        _fail(f"{exc}; start one with: lattice serve")
    Console(width=160).print(view)
    raise typer.Exit(code)


@app.command()
def doctor(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (or LATTICE_CONFIG).")] = None,
    port: Annotated[int | None, typer.Option(help="The port serve would use (overrides PORT).")] = None,
) -> None:
    """Check config, port, backends, models, roles and engines; say how to fix each problem."""
    import asyncio

    from rich.console import Console

    from local_lattice.console.doctor import diagnose, report

    path = config or (Path(os.environ["LATTICE_CONFIG"]) if os.environ.get("LATTICE_CONFIG") else None)
    code, table = report(asyncio.run(diagnose(path, os.environ, port)))
    Console(width=160).print(table)
    typer.echo("no problems found" if code == 0 else "problems found: see 'how to fix'", err=code != 0)
    raise typer.Exit(code)


@app.command()
def demo(
    url: Annotated[str, _URL] = "http://127.0.0.1:5001",
    api_key: Annotated[str | None, _KEY] = None,
    prompt: Annotated[str | None, typer.Option(help="The request sent to each role.")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge spec for /swarm/vote (default: the gateway's).")] = None,
    max_tokens: Annotated[int, typer.Option(help="max_tokens for every call.")] = 96,
) -> None:
    """The 60-second demo: models, role:fast vs role:coder, then /swarm/vote."""
    import asyncio

    from rich.console import Console

    from local_lattice.console import demo as showcase
    from local_lattice.console.client import GatewayUnreachable

    try:
        code = asyncio.run(
            showcase.run_demo(Console(width=160), url, api_key, prompt or showcase.PROMPT, max_tokens, judge)
        )
    except GatewayUnreachable as exc:
        _fail(f"{exc}; start one with: lattice serve")
    raise typer.Exit(code)


@app.command()
def usage(
    since: Annotated[str, typer.Option(help="Time window: 30m, 24h, 7d …")] = "24h",
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: config / LATTICE_LEDGER_PATH).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (or LATTICE_CONFIG).")] = None,
) -> None:
    """Summarise the request ledger by key and model."""
    import sqlite3
    import time

    from rich.console import Console
    from rich.table import Table

    from local_lattice.observability.ledger import parse_window, resolve_path, summary

    try:
        window = parse_window(since)
    except ValueError as exc:
        _fail(str(exc))
    if ledger is not None:
        path: str | None = str(ledger)
    else:
        path = resolve_path(load_config(config, None, None).observability.ledger_path)
    if path is None or path == ":memory:":
        _fail("the ledger is off or in memory in this configuration; pass --ledger FILE")
    if not Path(str(path)).exists():
        _fail(f"no ledger at {path} (nothing recorded yet?)")
    try:
        rows = summary(str(path), time.time() - window)
    except sqlite3.Error as exc:
        _fail(f"cannot read the ledger {path}: {exc}")
    table = Table(title=f"Requests in the last {since} ({path})", title_justify="left")
    for name in ("Key", "Model", "Requests", "Errors", "Tokens in", "Tokens out", "Mean ms", "Max ms", "Cost"):
        table.add_column(name, justify="left" if name in ("Key", "Model") else "right")
    for row in rows:
        cost = "-" if row.cost is None else f"{row.cost:.4f}"
        table.add_row(
            row.key_name, row.model or "-", str(row.requests), str(row.errors), str(row.input_tokens),
            str(row.output_tokens), f"{row.mean_latency_ms:.1f}", f"{row.max_latency_ms:.1f}", cost,
        )  # fmt: skip
    Console(width=160).print(table if rows else f"no requests in the last {since} ({path})")


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON schema of the configuration file."""
    import json

    from local_lattice.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@app.command("config-docs")
def config_docs() -> None:
    """Print the configuration reference (docs/configuration.md) generated from the config models."""
    from local_lattice.config_reference import markdown

    typer.echo(markdown(), nl=False)


@app.command()
def init(
    backend: Annotated[
        str, typer.Option(help="auto | lmstudio | ollama | openai | mlx: which sources to probe.")
    ] = "auto",
    output: Annotated[
        Path | None, typer.Option(help="Roles file to write; .toml writes a [roles] table, else JSON.")
    ] = None,
    lmstudio_url: Annotated[
        str | None, typer.Option("--lmstudio-url", help="LM Studio base URL (env LM_STUDIO_URL).")
    ] = None,
    model_root: Annotated[
        list[Path] | None, typer.Option("--model-root", help="Model folder to scan (env MLX_MODEL_ROOT).")
    ] = None,
    url: Annotated[list[str] | None, typer.Option("--url", help="Another OpenAI-compatible /v1 URL to probe.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing roles file.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the roles instead of writing them.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config whose backends to probe.")] = None,
) -> None:
    """Probe local model servers and folders, infer roles from model ids, write a roles file."""
    from local_lattice.routing import init as bootstrap

    if backend not in ("auto", "lmstudio", "ollama", "openai", "mlx"):
        _fail(f"--backend must be auto, lmstudio, ollama, openai or mlx, not {backend!r}")
    loaded = load_config(config, None, None)
    roots = model_root or ([Path(os.environ["MLX_MODEL_ROOT"])] if os.environ.get("MLX_MODEL_ROOT") else [])
    code, text = bootstrap.run_init(
        loaded,
        backend,  # type: ignore[arg-type]
        output=output,
        lmstudio_url=lmstudio_url or os.environ.get("LM_STUDIO_URL"),
        model_roots=roots,
        urls=url or [],
        force=force,
        dry_run=dry_run,
    )
    typer.echo(text, err=code != 0, nl=False)
    raise typer.Exit(code)


@app.command()
def models(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (or LATTICE_CONFIG).")] = None,
) -> None:
    """Show every model of every configured backend with its roles and profile."""
    import asyncio

    from rich.console import Console

    from local_lattice.routing.listing import inventory_table

    Console().print(asyncio.run(inventory_table(load_config(config, None, None))))


def init_main() -> None:
    """The original's ``local-lattice-init``: the ``init`` command on its own."""
    sys.argv[1:1] = ["init"]
    app()


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="JSONL rows: id, prompt, expected|null, grader, rubric.")],
    models: Annotated[str, typer.Option(help="Comma-separated model specs; the first is 'single'.")],
    judge: Annotated[str | None, typer.Option(help="Judge/aggregator spec (default: the first model).")] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: single,vote,debate,majority,synthesize,self-moa.")] = (
        "single,vote,debate,majority,synthesize"
    ),
    url: Annotated[str | None, typer.Option(help="A running gateway; without it one is started from --config.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config for the in-process gateway.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write one JSON line per row and method here.")] = None,
    max_tokens: Annotated[int, typer.Option(help="max_tokens for every call.")] = 64,
    limit: Annotated[int, typer.Option(help="Only the first N rows (0 = all).")] = 0,
    api_key: Annotated[str | None, typer.Option(envvar="MIDDLE_LAYER_API_KEY", help="Key for the gateway.")] = None,
) -> None:
    """Compare single model, vote, debate, majority and synthesize on a dataset."""
    import asyncio

    from local_lattice.swarm import eval as evaluation

    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(evaluation.METHODS))
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if unknown or not specs:
        _fail(f"unknown methods {unknown} or no models; methods are {', '.join(evaluation.METHODS)}")
    try:
        rows = evaluation.load_dataset(dataset)[: limit or None]
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    settings = None if url else load_config(config, "127.0.0.1", 0)
    results = asyncio.run(_evaluate(url, settings, rows, wanted, specs, judge or specs[0], max_tokens, api_key))
    typer.echo(evaluation.render(evaluation.summarize(results, wanted)))
    if out is not None:
        evaluation.write_rows(out, results)


async def _evaluate(
    url: str | None, config: Config | None, rows: list[Any], methods: list[str], models: list[str],
    judge: str, max_tokens: int, api_key: str | None,
) -> list[Any]:  # fmt: skip
    """Against ``url``, or against a gateway started here on a free loopback port from ``config``."""
    import asyncio
    import socket

    import uvicorn

    from local_lattice.api.app import create_app
    from local_lattice.swarm.eval import run_eval

    if url is not None:
        return await run_eval(url, rows, methods, models, judge, api_key=api_key, max_tokens=max_tokens)
    assert config is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)
    try:
        keys = [key for _, key in config.server.named_keys()]
        return await run_eval(
            f"http://127.0.0.1:{port}", rows, methods, models, judge, api_key=keys[0] if keys else None,
            max_tokens=max_tokens,
        )  # fmt: skip
    finally:
        server.should_exit = True
        await serving


@app.command()
def pull(
    repo: Annotated[str, typer.Argument(help="org/name (an MLX folder) or org/name/file.gguf (one GGUF).")],
    file: Annotated[str | None, typer.Option("--file", help="The GGUF file to fetch from the repo.")] = None,
) -> None:
    """Fetch a model from the Hugging Face hub into its cache, where the gateway discovers it."""
    from local_lattice.engines.download import DownloadError, parse_target
    from local_lattice.engines.download import pull as pull_model

    try:
        typer.echo(pull_model(parse_target(repo, file)))
    except DownloadError as exc:
        typer.echo(f"lattice pull: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()


def lmstudio_main() -> None:
    """The original's ``local-lattice-lmstudio``: environment only, the ``lmstudio`` profile (port 5000,
    one LM Studio at LM_STUDIO_URL as backend ``local``, only loaded models …); arguments are ignored,
    as they were."""
    try:
        config = load(None, profile_env("lmstudio", os.environ, Path.cwd()))
        check_bind(config.server)
        build_policy(config)
    except ConfigError as exc:
        print(f"local-lattice-lmstudio: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_server(config)


if __name__ == "__main__":
    main()
