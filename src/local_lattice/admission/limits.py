"""Turn the ``[admission]`` config and each backend's kind into the scheduler's ``Limits``.

In-process engines run one generation per model at a time unless told otherwise, and so does LM
Studio (``LM_STUDIO_PER_MODEL_INFLIGHT_CAP``: it crashes large models fed two jobs at once); other
upstream servers batch, so they get a generous per-backend cap and no per-model cap by default.
"""

from __future__ import annotations

from local_lattice.admission.controls import PriorityPolicy
from local_lattice.admission.tickets import BackendCaps, Limits
from local_lattice.config import AdmissionConfig, BackendConfig, Config

ONE_AT_A_TIME = frozenset({"llamacpp", "mlx", "lmstudio"})  # one call per model unless configured
ONE_PER_MODEL = 1


def _per_model(admission: AdmissionConfig, backend: BackendConfig | None) -> int:
    kind = backend.type if backend is not None else None
    if kind == "lmstudio" and admission.lmstudio_per_model_inflight_cap is not None:
        return admission.lmstudio_per_model_inflight_cap
    if admission.per_model_inflight_cap is not None:
        return admission.per_model_inflight_cap
    return ONE_PER_MODEL if kind in ONE_AT_A_TIME else 0


def backend_caps(admission: AdmissionConfig, backend: BackendConfig | None) -> BackendCaps:
    per_model = _per_model(admission, backend)
    concurrency = admission.backend_max_concurrency
    if backend is not None and backend.max_concurrency is not None:
        concurrency = backend.max_concurrency
    return BackendCaps(max_concurrency=concurrency, per_model=per_model)


def limits_from(config: Config) -> Limits:
    admission = config.admission
    return Limits(
        queue_max_per_model=admission.queue_max_per_model,
        queue_max_total=admission.queue_max_total,
        global_cap=admission.max_parallel_model_calls or 0,
        backends={b.name: backend_caps(admission, b) for b in config.backends},
        default_backend=backend_caps(admission, None),
        retry_fallback_sec=admission.retry_after_sec,
        retry_max_sec=admission.retry_after_max_sec,
        jitter_sec=admission.retry_jitter_sec,
    )


def priority_policy(admission: AdmissionConfig) -> PriorityPolicy:
    low, high = sorted((admission.priority_min, admission.priority_max))
    return PriorityPolicy(default=max(low, min(high, admission.default_priority)), minimum=low, maximum=high)
