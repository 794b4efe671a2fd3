"""From config and environment to the scheduler's limits."""

from __future__ import annotations

from local_lattice.admission.limits import limits_from, priority_policy
from local_lattice.config import AdmissionConfig, BackendConfig, Config, load


def test_defaults_are_generous_for_upstream_servers() -> None:
    config = Config(backends=[BackendConfig(name="up", url="http://x/v1")])  # type: ignore[call-arg]
    limits = limits_from(config)
    assert limits.caps("up").per_model == 0
    assert limits.caps("up").max_concurrency == 64
    assert limits.global_cap == 0
    assert (limits.queue_max_per_model, limits.queue_max_total) == (32, 128)


def test_in_process_engines_run_one_call_per_model() -> None:
    config = Config.model_construct(
        backends=[BackendConfig.model_construct(name="eng", type="llamacpp", max_concurrency=None)],
        admission=AdmissionConfig(),  # type: ignore[call-arg]
    )
    assert limits_from(config).caps("eng").per_model == 1


def test_environment_sets_every_bound() -> None:
    env = {
        "LM_STUDIO_URL": "http://127.0.0.1:1234",
        "MLX_PER_MODEL_INFLIGHT_CAP": "2",
        "MAX_PARALLEL_MODEL_CALLS": "3",
        "MLX_QUEUE_MAX_PER_MODEL": "5",
        "MLX_QUEUE_MAX_TOTAL": "9",
        "MLX_QUEUE_WAIT_TIMEOUT_SEC": "7.5",
        "MLX_QUEUE_RETRY_AFTER_SEC": "4",
        "MLX_QUEUE_RETRY_JITTER_SEC": "1.5",
        "MLX_QUEUE_PRIORITY_MIN": "-3",
        "MLX_QUEUE_PRIORITY_MAX": "3",
        "MLX_QUEUE_DEFAULT_PRIORITY": "9",
    }
    config = load(None, env)
    limits = limits_from(config)
    assert limits.caps("lmstudio").per_model == 2
    assert limits.global_cap == 3
    assert (limits.queue_max_per_model, limits.queue_max_total) == (5, 9)
    assert (limits.retry_fallback_sec, limits.jitter_sec) == (4.0, 1.5)
    assert config.admission.queue_wait_timeout_sec == 7.5
    policy = priority_policy(config.admission)
    assert (policy.minimum, policy.maximum, policy.default) == (-3, 3, 3)


def test_a_backend_can_set_its_own_concurrency() -> None:
    config = load(None, {})
    config.backends = [BackendConfig(name="b", url="http://x/v1", max_concurrency=4)]  # type: ignore[call-arg]
    assert limits_from(config).caps("b").max_concurrency == 4
