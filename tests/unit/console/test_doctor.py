"""Doctor's checks over a config, without a network: each problem comes with a fix, and only
failures make the exit code non-zero."""

from __future__ import annotations

import socket
from pathlib import Path

from local_lattice.console.doctor import Finding, check_port, check_roles, load_checked, report
from local_lattice.routing.policy import RoutingPolicy
from local_lattice.routing.roles import Roles
from local_lattice.types import ModelInfo


def test_an_unknown_key_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[routing]\ndefualt_model = 'x'\n")
    config, findings = load_checked(path, {})
    assert config is None
    assert findings[0].level == "fail"
    assert "routing.defualt_model" in findings[0].detail
    assert findings[0].fix


def test_a_public_bind_without_a_key_fails() -> None:
    config, findings = load_checked(None, {"HOST": "0.0.0.0"})
    assert config is not None
    bind = next(f for f in findings if f.check == "bind")
    assert bind.level == "fail"
    assert "MIDDLE_LAYER_API_KEY" in bind.fix


async def test_a_taken_port_is_a_failure_with_a_fix() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        finding = await check_port("127.0.0.1", holder.getsockname()[1])
    assert finding.level == "fail"
    assert "--port" in finding.fix


def test_roles_that_match_nothing_are_warnings_unless_misses_fall_back() -> None:
    roles = Roles({"coder": ("coder",), "fast": ("tiny",)})
    models = [ModelInfo(id="tiny-chat", backend="b")]
    strict = {f.check: f for f in check_roles(RoutingPolicy(roles=roles, on_model_miss="error"), models)}
    assert strict["role:fast"].level == "ok"
    assert "b/tiny-chat" in strict["role:fast"].detail
    assert strict["role:coder"].level == "warn"
    assert "[roles]" in strict["role:coder"].fix
    fallback = {f.check: f for f in check_roles(RoutingPolicy(roles=roles), models)}
    assert fallback["role:coder"].level == "ok"  # still served: by the fallback, and doctor says by what
    assert "served by b/tiny-chat (ON_MODEL_MISS=fallback)" in fallback["role:coder"].detail
    assert "[roles]" in fallback["role:coder"].fix


def test_markup_in_details_and_fixes_is_printed_as_written() -> None:
    from rich.console import Console

    finding = Finding("engine mlx_lm", "warn", "see [[backends]]", "pip install 'local-lattice[mlx]'")
    console = Console(width=200, record=True)
    console.print(report([finding])[1])
    text = console.export_text()
    assert "see [[backends]]" in text
    assert "pip install 'local-lattice[mlx]'" in text


def test_only_failures_set_the_exit_code() -> None:
    assert report([Finding("a", "ok", ""), Finding("b", "warn", "", "fix")])[0] == 0
    assert report([Finding("a", "ok", ""), Finding("b", "fail", "", "fix")])[0] == 1
