"""Discovery over the real folder layouts (LM Studio, mlx-models, the Hugging Face cache)."""

from __future__ import annotations

from pathlib import Path

from local_lattice.engines.discovery import default_roots, discover


def touch(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def mlx_folder(path: Path) -> Path:
    for name in ("config.json", "tokenizer.json"):
        touch(path / name)
    touch(path / "model.safetensors", 100)
    return path


def test_ids_are_stable_and_readable_across_layouts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lms = home / ".lmstudio" / "models"
    touch(lms / "lmstudio-community" / "Qwen2.5-0.5B-GGUF" / "qwen2.5-0.5b-q4_k_m.gguf", 50)
    touch(lms / "bartowski" / "multi" / "m-Q4.gguf")
    touch(lms / "bartowski" / "multi" / "m-Q8.gguf")
    touch(lms / "bartowski" / "multi" / "mmproj-m.gguf")
    touch(lms / "big" / "split" / "big-00001-of-00002.gguf", 5)
    touch(lms / "big" / "split" / "big-00002-of-00002.gguf", 7)
    mlx_folder(home / ".cache" / "mlx-models" / "mlx-community" / "Tiny-4bit")
    hub = home / ".cache" / "huggingface" / "hub"
    mlx_folder(hub / "models--mlx-community--SmolLM-4bit" / "snapshots" / "abc123")
    touch(hub / "models--org--gguf-repo" / "snapshots" / "def" / "model.Q4.gguf")
    root = tmp_path / "root"
    touch(root / "loose.gguf")

    found = {m.id: m for m in discover(default_roots({"HOME": str(home)}, str(root)))}

    assert set(found) == {
        "loose",
        "lmstudio-community/qwen2.5-0.5b-gguf",
        "bartowski/multi/m-q4",
        "bartowski/multi/m-q8",
        "big/split",
        "mlx-community/tiny-4bit",
        "mlx-community/smollm-4bit",
        "org/gguf-repo",
    }
    assert found["big/split"].size_bytes == 12
    assert found["mlx-community/smollm-4bit"].format == "mlx"
    assert found["lmstudio-community/qwen2.5-0.5b-gguf"].format == "gguf"


def test_named_models_win_and_missing_ones_stay_listed(tmp_path: Path) -> None:
    path = touch(tmp_path / "a" / "model.gguf")
    found = {m.id: m for m in discover([tmp_path], {"mine": str(path), "gone": str(tmp_path / "nope.gguf")})}
    assert found["mine"].path == path
    assert found["gone"].size_bytes == 0
    assert "a" in found  # the same file is still discoverable under its folder id


def test_missing_roots_are_fine(tmp_path: Path) -> None:
    assert discover([tmp_path / "absent"]) == []
