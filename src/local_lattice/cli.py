"""Command line: parse, load the config, run the server. No gateway logic lives here."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from local_lattice import __version__
from local_lattice.config import Config, ConfigError, check_bind, load
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


def load_config(config_path: Path | None, host: str | None, port: int | None) -> Config:
    path = config_path or (Path(os.environ["LATTICE_CONFIG"]) if os.environ.get("LATTICE_CONFIG") else None)
    try:
        config = load(path, os.environ)
        if host is not None:
            config.server.host = host
        if port is not None:
            config.server.port = port
        check_bind(config.server)
        build_policy(config)  # a malformed roles or profiles file stops the start here, named
    except ConfigError as exc:
        _fail(str(exc))
    return config


def run_server(config: Config) -> None:
    import uvicorn

    from local_lattice.api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not config.server.log_timing:
        logging.getLogger("lattice.request").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(config),
        host=config.server.host,
        port=config.server.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (or LATTICE_CONFIG).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (overrides HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides PORT).")] = None,
) -> None:
    """Run the gateway."""
    run_server(load_config(config, host, port))


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON schema of the configuration file."""
    import json

    from local_lattice.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


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
    """The original's ``local-lattice-lmstudio``: env only, port 5000, one upstream at LM_STUDIO_URL."""
    env = dict(os.environ)
    env.setdefault("LM_STUDIO_URL", "http://127.0.0.1:1234")
    env.setdefault("PORT", "5000")
    try:
        config = load(None, env)
        check_bind(config.server)
    except ConfigError as exc:
        print(f"local-lattice-lmstudio: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_server(config)


if __name__ == "__main__":
    main()
