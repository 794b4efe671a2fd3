"""``lattice ps`` rows: admission counts (keyed ``backend/model``) land on the model list's rows."""

from __future__ import annotations

from rich.console import Console

from local_lattice.console.status import _models


def rendered(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_in_flight_and_waiting_land_on_the_right_backend() -> None:
    models = [
        {"id": "m", "owned_by": "a", "kind": "chat", "loaded": True},
        {"id": "m", "owned_by": "b", "kind": "chat", "loaded": None},
    ]
    admission = {
        "inflight": 2, "waiting": 3, "queue_max_per_model": 4, "queue_max_total": 8,
        "models": {"b/m": {"inflight": 2, "waiting": 3, "service_sec": 1.5}, "c/x": {"inflight": 0, "waiting": 1}},
    }  # fmt: skip
    text = rendered(_models(models, admission, {}))
    assert "2 in flight, 3 waiting" in text
    rows = {tuple(cell.strip() for cell in line.split("│")[1:3]): line for line in text.splitlines() if "│" in line}
    a_row = [c.strip() for c in rows[("m", "a")].split("│")]
    b_row = [c.strip() for c in rows[("m", "b")].split("│")]
    assert a_row[4:11] == ["yes", "-", "upstream server", "the server's policy", "0", "0", "-"]
    assert b_row[4:11] == ["?", "-", "upstream server", "the server's policy", "2", "3", "1.50"]
    assert ("x", "c") in rows  # queued for a model the list no longer shows


def test_a_resident_in_process_model_shows_memory_device_and_how_it_leaves() -> None:
    models = [
        {"id": "smol", "owned_by": "llamacpp", "kind": "chat", "loaded": True},
        {"id": "cold", "owned_by": "llamacpp", "kind": "chat", "loaded": False},
    ]
    admission = {"inflight": 1, "waiting": 1, "models": {"llamacpp/smol": {"inflight": 1, "waiting": 1}}}
    backends = {
        "llamacpp": {
            "ok": True,
            "engine": "llama.cpp",
            "device": "cpu",
            "resident": [{"model": "smol", "size_bytes": 98_000_000, "idle_s": 0.0}],
            "residency": {"max_models": 2, "memory_budget_bytes": None, "idle_timeout_s": None},
        }
    }
    text = rendered(_models(models, admission, backends))
    cells = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line
    }
    assert cells["smol"][4:10] == ["yes", "98 MB", "cpu · in-process llama.cpp", "evicted (LRU), in use", "1", "1"]
    assert cells["cold"][4:8] == ["no", "-", "cpu · in-process llama.cpp", "-"]
    assert "at most 2 resident; no idle timeout" in " ".join(text.split())
