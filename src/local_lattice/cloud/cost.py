"""Token prices, per-request cost and the daily budget per backend.

``PriceBook`` answers what a model's tokens cost (a profile's prices win over its backend's);
``BudgetLedger`` adds up each backend's spend per UTC day and says whether any is left. The ledger
is state owned by the gateway instance; its clock is injected so tests can turn the day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from local_lattice.config import Config
from local_lattice.types import Usage


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """US dollars per million input and output tokens."""

    input_usd_per_mtok: float = 0.0
    output_usd_per_mtok: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.input_usd_per_mtok + usage.completion_tokens * self.output_usd_per_mtok
        ) / 1e6


@dataclass(frozen=True, slots=True)
class PriceBook:
    """The prices of the config: per model (profiles) before per backend."""

    by_backend: dict[str, TokenPrice] = field(default_factory=dict)
    by_model: dict[str, TokenPrice] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> PriceBook:
        backends = {
            b.name: TokenPrice(b.input_usd_per_mtok or 0.0, b.output_usd_per_mtok or 0.0)
            for b in config.backends
            if b.input_usd_per_mtok is not None or b.output_usd_per_mtok is not None
        }
        models = {
            model: TokenPrice(float(p.get("input_usd_per_mtok", 0.0)), float(p.get("output_usd_per_mtok", 0.0)))
            for model, p in config.profiles.items()
            if "input_usd_per_mtok" in p or "output_usd_per_mtok" in p
        }
        return cls(backends, models)

    def price(self, backend: str, model: str) -> TokenPrice | None:
        return self.by_model.get(model) or self.by_backend.get(backend)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass
class BudgetLedger:
    """What each budgeted backend spent today (UTC); a new day starts from nothing."""

    limits: dict[str, float]
    today: Callable[[], dt.date] = utc_today
    _day: dt.date | None = None
    _spent: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config, today: Callable[[], dt.date] = utc_today) -> BudgetLedger:
        limits = {b.name: b.daily_budget_usd for b in config.backends if b.daily_budget_usd is not None}
        return cls(limits, today)

    def _roll(self) -> None:
        day = self.today()
        if day != self._day:
            self._day = day
            self._spent = {}

    def record(self, backend: str, cost: float) -> None:
        self._roll()
        self._spent[backend] = self._spent.get(backend, 0.0) + cost

    def spent(self, backend: str) -> float:
        self._roll()
        return self._spent.get(backend, 0.0)

    def left(self, backend: str) -> bool:
        """True while ``backend`` has no budget or has not spent it today."""
        limit = self.limits.get(backend)
        return limit is None or self.spent(backend) < limit


def seconds_to_midnight(now: dt.datetime | None = None) -> float:
    """Seconds until the UTC day (and with it every daily budget) turns over."""
    now = now or dt.datetime.now(dt.UTC)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return (tomorrow - now).total_seconds()
