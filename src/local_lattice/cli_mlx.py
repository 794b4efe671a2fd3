"""The original's ``local-lattice-mlx`` command (alias ``middle-layer-mlx``): ``serve`` with grab
mode, a model root and preloads, and ``download``. Parsing only; the work is elsewhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from local_lattice.cli import load_config, run_server

app = typer.Typer(
    name="local-lattice-mlx",
    help="Serve local models in-process (MLX on Apple silicon, llama.cpp elsewhere).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (overrides HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides PORT).")] = None,
    grab: Annotated[
        str | None, typer.Option("--grab", help="Serve only this model (GGUF file or MLX folder) for every request.")
    ] = None,
    model_root: Annotated[Path | None, typer.Option("--model-root", help="Folder scanned for models first.")] = None,
    preload: Annotated[
        str | None, typer.Option("--preload", help="Model ids to load at start, comma-separated.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
) -> None:
    """Run the gateway over local models."""
    settings = load_config(config, host, port)
    if grab is not None:
        settings.engines.grab_model = grab
    if model_root is not None:
        settings.engines.model_root = str(model_root)
    if preload is not None:
        settings.engines.preload = [p.strip() for p in preload.split(",") if p.strip()]
    run_server(settings)


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
