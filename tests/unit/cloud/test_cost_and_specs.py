"""Prices, the daily budget ledger, cloud specs and the ANTHROPIC_* settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from pydantic import ValidationError

from local_lattice.cloud.cost import BudgetLedger, PriceBook, TokenPrice, seconds_to_midnight
from local_lattice.cloud.specs import cloud_candidate, directory_of, parse_cloud_spec, resolve_with_cloud
from local_lattice.config import Config, load
from local_lattice.errors import BackendUnavailable, InvalidRequest, ModelNotFound
from local_lattice.routing.policy import build_policy
from local_lattice.routing.resolver import resolve
from local_lattice.types import ModelInfo, Usage


def test_token_price_and_profile_override() -> None:
    config = Config.model_validate(
        {
            "backends": [
                {"name": "anthropic", "type": "anthropic", "input_usd_per_mtok": 3, "output_usd_per_mtok": 15},
                {"name": "local", "url": "http://127.0.0.1:1/v1"},
            ],
            "profiles": {"claude-opus-4-1": {"input_usd_per_mtok": 15, "output_usd_per_mtok": 75}},
        }
    )
    book = PriceBook.of(config)
    assert book.price("local", "smol") is None
    price = book.price("anthropic", "claude-sonnet-4-5")
    assert price == TokenPrice(3, 15)
    assert price.cost(Usage(1_000_000, 100_000)) == pytest.approx(4.5)
    assert book.price("anthropic", "claude-opus-4-1") == TokenPrice(15, 75)


def test_budget_ledger_turns_over_at_midnight() -> None:
    day = [dt.date(2026, 1, 1)]
    ledger = BudgetLedger({"anthropic": 0.01}, today=lambda: day[0])
    assert ledger.left("anthropic")
    assert ledger.left("local")
    ledger.record("anthropic", 0.006)
    assert ledger.left("anthropic")
    ledger.record("anthropic", 0.006)
    assert not ledger.left("anthropic")
    assert ledger.spent("anthropic") == pytest.approx(0.012)
    day[0] = dt.date(2026, 1, 2)
    assert ledger.left("anthropic")
    noon = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert seconds_to_midnight(noon) == 12 * 3600


def test_parse_cloud_spec() -> None:
    assert parse_cloud_spec("anthropic") == ("anthropic", None)
    assert parse_cloud_spec(" Anthropic:claude-opus-4-1 ") == ("anthropic", "claude-opus-4-1")
    assert parse_cloud_spec("role:reasoner") is None
    assert parse_cloud_spec("smol") is None


def test_cloud_spec_without_backend_or_key_names_the_setting() -> None:
    nothing = directory_of(Config())
    with pytest.raises(InvalidRequest, match="ANTHROPIC_API_KEY") as bad:
        cloud_candidate("anthropic:claude-x", nothing)
    assert bad.value.status == 400
    keyless = directory_of(Config.model_validate({"backends": [{"name": "cloud", "type": "anthropic"}]}))
    with pytest.raises(BackendUnavailable, match="ANTHROPIC_API_KEY") as unavailable:
        cloud_candidate("anthropic", keyless)
    assert unavailable.value.status == 503


@pytest.mark.parametrize("miss", ["fallback", "error"])
def test_priority_list_with_a_cloud_item(miss: str) -> None:
    config = load(None, {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_MODEL": "claude-haiku-4-5", "ON_MODEL_MISS": miss})
    directory = directory_of(config)
    local = [ModelInfo("smol", "local")]
    policy = build_policy(config)
    on_miss = partial(resolve, policy=policy)

    def strict() -> Any:
        return partial(resolve, policy=replace(policy, on_model_miss="error"))

    def found(spec: str) -> list[tuple[str, str]]:
        chosen = resolve_with_cloud(spec, local, "chat", directory, on_miss, strict).candidates
        return [(m.backend, m.id) for m in chosen]

    assert found("smol,anthropic:claude-sonnet-4-5") == [("local", "smol"), ("anthropic", "claude-sonnet-4-5")]
    # A miss in the list moves on to the next item, whatever ON_MODEL_MISS says.
    missing_local = resolve_with_cloud("missing,anthropic", local, "chat", directory, on_miss, strict)
    assert [(m.backend, m.id) for m in missing_local.candidates] == [("anthropic", "claude-haiku-4-5")]
    assert "skipped missing" in missing_local.explanation
    assert found("smol") == [("local", "smol")]
    if miss == "fallback":
        assert found("nope") == [("local", "smol")]
    else:
        with pytest.raises(ModelNotFound):
            found("nope")
    # A cloud item that cannot be served is the client's error (it names the setting), never a fallback.
    with pytest.raises(InvalidRequest, match="ANTHROPIC_API_KEY"):
        resolve_with_cloud("nope,anthropic", local, "chat", directory_of(Config()), on_miss, strict)


def test_anthropic_env_settings() -> None:
    config = load(
        None,
        {
            "ANTHROPIC_API_KEY": "sk-ant-xyz",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/",
            "ANTHROPIC_MODEL": "claude-haiku-4-5",
            "ANTHROPIC_VERSION": "2023-06-01",
        },
    )
    (backend,) = config.backends
    assert (backend.name, backend.type, backend.url) == ("anthropic", "anthropic", "http://127.0.0.1:9")
    assert backend.api_key is not None
    assert backend.api_key.get_secret_value() == "sk-ant-xyz"
    assert (backend.models, backend.anthropic_version) == (["claude-haiku-4-5"], "2023-06-01")
    assert load(None, {}).backends == []
    with pytest.raises(ValidationError, match="url is required"):
        Config.model_validate({"backends": [{"name": "x", "type": "openai"}]})
