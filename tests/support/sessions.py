"""Session ids chosen by where rendezvous hashing sends them (the same function the gateway uses)."""

from __future__ import annotations

from collections.abc import Sequence

from local_lattice.routing.fleet import rendezvous, session_key


def home_of(session: str, names: Sequence[str]) -> str:
    """The backend among ``names`` that an ``X-Session-Id: session`` belongs to."""
    key = session_key("chat", {}, {"x-session-id": session})
    assert key is not None
    return rendezvous(key.digest, list(names))[0]


def sessions_homed_on(backend: str, names: Sequence[str], count: int = 1, prefix: str = "s") -> list[str]:
    """``count`` session ids whose home among ``names`` is ``backend``."""
    found = [s for s in (f"{prefix}{i}" for i in range(1000)) if home_of(s, names) == backend][:count]
    assert len(found) == count, f"fewer than {count} sessions homed on {backend} among 1000"
    return found
