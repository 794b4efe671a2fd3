"""Model loading shown while the gateway starts: a spinner with the elapsed time per model on a
terminal, one plain line per model elsewhere (logs, CI). Implements ``types.LoadProgress``."""

from __future__ import annotations

from rich.console import Console
from rich.status import Status


class LoadProgressDisplay:
    """Shows model loading on the terminal (a spinner) or as plain lines elsewhere (logs, CI)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._status: Status | None = None

    def loading(self, model: str) -> None:
        if self.console.is_terminal:
            self._status = self.console.status(f"loading [bold]{model}[/] …", spinner="dots")
            self._status.start()
        else:
            self.console.print(f"loading {model} …", highlight=False)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def loaded(self, model: str, seconds: float) -> None:
        self._stop()
        self.console.print(f"[green]✓[/] loaded {model} in {seconds:.2f} s", highlight=False)

    def failed(self, model: str, message: str) -> None:
        self._stop()
        self.console.print(f"[red]✗[/] could not load {model}: {message}", highlight=False)
