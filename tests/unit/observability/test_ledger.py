"""The SQLite ledger: metadata rows that survive a restart, and failures that never stop requests."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.observability.ledger import Ledger, default_path, parse_window, resolve_path, summary
from tests.unit.observability.conftest import AUTH, KEY, make_config

CHAT = "/v1/chat/completions"
SECRET_PROMPT = "my secret prompt text"
BODY = {"model": "m1", "messages": [{"role": "user", "content": SECRET_PROMPT}]}


def test_rows_survive_a_restart_and_hold_no_prompts(fake: FakeBackend, ledger_path: Path) -> None:
    with TestClient(create_app(make_config(ledger_path), {"f": fake})) as client:
        for _ in range(2):
            assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200
        assert client.post(CHAT, json={**BODY, "model": "nope"}, headers=AUTH).status_code == 404
    with TestClient(create_app(make_config(ledger_path), {"f": fake})) as client:
        assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200
    rows = summary(str(ledger_path), time.time() - 60)
    by_model = {row.model: row for row in rows}
    assert by_model["m1"].requests == 3
    assert by_model["m1"].errors == 0
    assert by_model["m1"].input_tokens == 9
    assert by_model[""].errors == 1
    assert {row.key_name for row in rows} == {"key-1"}  # the key's name, never the key
    raw = b"".join(p.read_bytes() for p in ledger_path.parent.glob(ledger_path.name + "*"))
    assert SECRET_PROMPT.encode() not in raw
    assert KEY.encode() not in raw


def test_summary_window_excludes_old_rows(fake: FakeBackend, ledger_path: Path) -> None:
    with TestClient(create_app(make_config(ledger_path), {"f": fake})) as client:
        client.post(CHAT, json=BODY, headers=AUTH)
    assert summary(str(ledger_path), time.time() + 1) == []


def test_unwritable_path_is_logged_once_and_requests_flow(
    fake: FakeBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with TestClient(create_app(make_config(blocker / "ledger.sqlite3"), {"f": fake})) as client:
        for _ in range(5):
            assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200
            client.app.state.gateway.observer.ledger.flush()  # type: ignore[attr-defined]
        dropped = client.get("/metrics", headers=AUTH).text
    errors = [r for r in caplog.records if r.name == "lattice.ledger" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "write failed" in errors[0].getMessage()
    assert "lattice_ledger_dropped_records_total 5.0" in dropped


def test_locked_file_is_logged_once_then_writes_resume(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(str(path)).close()  # nothing written: the file does not exist yet
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS hold (x)")
    holder.execute("BEGIN EXCLUSIVE")
    fake = FakeBackend.with_models("f", "m1")
    with TestClient(create_app(make_config(path), {"f": fake})) as client:
        ledger = client.app.state.gateway.observer.ledger  # type: ignore[attr-defined]
        for _ in range(2):
            started = time.perf_counter()
            assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200
            assert time.perf_counter() - started < 1.0  # the lock never reaches the request path
            ledger.flush(timeout=10)
        holder.execute("ROLLBACK")
        holder.close()
        assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200
        ledger.flush(timeout=10)
    errors = [r for r in caplog.records if r.name == "lattice.ledger" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "locked" in errors[0].getMessage()
    assert any("resumed" in r.getMessage() for r in caplog.records if r.name == "lattice.ledger")
    assert [row.requests for row in summary(str(path), 0)] == [1]


def test_memory_and_off(fake: FakeBackend) -> None:
    with TestClient(create_app(make_config(":memory:"), {"f": fake})) as client:
        client.post(CHAT, json=BODY, headers=AUTH)
        ledger = client.app.state.gateway.observer.ledger  # type: ignore[attr-defined]
        assert ledger.query("SELECT COUNT(*) FROM requests") == [(1,)]
    with TestClient(create_app(make_config("off"), {"f": fake})) as client:
        assert client.app.state.gateway.observer.ledger is None  # type: ignore[attr-defined]
        assert client.post(CHAT, json=BODY, headers=AUTH).status_code == 200


def test_default_path_is_under_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_path("") == str(tmp_path / "local-lattice" / "ledger.sqlite3") == str(default_path())
    assert resolve_path("off") is None
    assert resolve_path(":memory:") == ":memory:"


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("30m", 1800), ("7d", 604800), ("2", 7200)])
def test_parse_window(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "soon"])
def test_parse_window_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


@pytest.mark.parametrize("count", [1, 255, 256, 257, 600])
def test_batches_of_any_size_keep_every_row_and_column(tmp_path: Path, count: int) -> None:
    # Rows go in as multi-row statements of at most 256 rows: the chunk edges must not lose or
    # shift a row.
    from local_lattice.observability.ledger import connect, insert_rows

    conn = connect(str(tmp_path / "l.sqlite3"))
    rows = [
        (float(i), f"r{i}", "k", "/v1/chat/completions", "auto", "m", "b", i, 2 * i, 1.5, None, 200, None, None)
        for i in range(count)
    ]
    with conn:
        insert_rows(conn, rows)
    assert conn.execute("SELECT * FROM requests ORDER BY ts").fetchall() == rows
