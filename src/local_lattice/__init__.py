"""Local Lattice: a capability gateway for LLM compute."""

__version__ = "0.4.0"
