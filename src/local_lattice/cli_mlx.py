"""The original's ``local-lattice-mlx`` command (alias ``middle-layer-mlx``): ``serve`` (also what it
does with no subcommand) with grab mode, a model root and preloads, under the ``mlx`` launch
profile unless told another; and ``download``. Parsing only; the work is elsewhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from local_lattice.cli import load_config, run_server

app = typer.Typer(
    name="local-lattice-mlx",
    help="Serve local models in-process (MLX on Apple silicon, llama.cpp elsewhere).",
    add_completion=False,
    pretty_exceptions_enable=False,
)

_GRAB_HELP = "Serve only this model for every request: a GGUF file, an MLX folder, or hf:org/name (fetched)."


def _serve(
    host: str | None,
    port: int | None,
    grab: str | None,
    display_name: str | None,
    no_grab: bool,
    model_root: Path | None,
    preload: str | None,
    config: Path | None,
    profile: str,
) -> None:
    settings = load_config(config, host, port, profile)
    engines = settings.engines
    if grab is not None:
        engines.grab_model = grab
    elif no_grab:
        engines.grab_model = None  # MLX_GRAB_MODEL is ignored for this run
    if display_name is not None:
        engines.grab_display_name = display_name.strip() or "mlx"
    if model_root is not None:
        engines.model_root = str(model_root)
    if preload is not None:
        engines.preload = [p.strip() for p in preload.split(",") if p.strip()]
    run_server(settings)


@app.callback(invoke_without_command=True)
def main_options(ctx: typer.Context) -> None:
    """Serve local models in-process (MLX on Apple silicon, llama.cpp elsewhere); ``serve`` with no
    subcommand."""
    if ctx.invoked_subcommand is None:
        _serve(None, None, None, None, False, None, None, None, "mlx")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (overrides HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides PORT).")] = None,
    grab: Annotated[str | None, typer.Option("--grab", help=_GRAB_HELP)] = None,
    display_name: Annotated[
        str | None,
        typer.Option("--display-name", help="The grabbed model's id for clients (env MLX_GRAB_DISPLAY_NAME; mlx)."),
    ] = None,
    no_grab: Annotated[bool, typer.Option("--no-grab", help="Ignore MLX_GRAB_MODEL for this run.")] = False,
    model_root: Annotated[Path | None, typer.Option("--model-root", help="Folder scanned for models first.")] = None,
    preload: Annotated[
        str | None, typer.Option("--preload", help="Model ids to load at start, comma-separated.")
    ] = None,
    no_pick_model: Annotated[
        bool,
        typer.Option("--no-pick-model", help="Accepted for the original's scripts: the gateway never asks at start."),
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
    profile: Annotated[
        str, typer.Option(help="mlx | stable[=safe|balanced|faster] | lmstudio; the environment wins.")
    ] = "mlx",
) -> None:
    """Run the gateway over local models."""
    _serve(host, port, grab, display_name, no_grab, model_root, preload, config, profile)


@app.command()
def download(
    repo: Annotated[str, typer.Argument(help="org/name (an MLX folder) or org/name/file.gguf (one GGUF).")],
    file: Annotated[str | None, typer.Option("--file", help="The GGUF file to fetch from the repo.")] = None,
) -> None:
    """Fetch a model from the Hugging Face hub into its cache."""
    from local_lattice.engines.download import DownloadError, parse_target, pull

    try:
        typer.echo(pull(parse_target(repo, file)))
    except DownloadError as exc:
        typer.echo(f"local-lattice-mlx download: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
