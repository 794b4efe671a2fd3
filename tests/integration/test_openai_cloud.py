"""Another cloud through the ``openai`` backend type: a URL and the backend's own key. The upstream
is a scripted OpenAI-compatible server on a real socket standing in for OpenAI, Groq, OpenRouter …"""

from __future__ import annotations

import openai
import pytest

from tests.support.servers import gateway_process
from tests.support.upstream import scripted_upstream

pytestmark = pytest.mark.slow


def test_openai_type_cloud_gets_its_own_key_never_the_clients() -> None:
    with scripted_upstream() as (url, rec):
        config = f"""
[[backends]]
name = "groq"
type = "openai"
url = "{url}"
api_key = "${{env:GROQ_API_KEY}}"
input_usd_per_mtok = 0.5
output_usd_per_mtok = 1.5
"""
        env = {"GROQ_API_KEY": "upstream-secret", "MIDDLE_LAYER_API_KEY": "client-key"}
        with gateway_process(config, env=env) as gateway:
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="ok-model", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.headers["x-model-routed-to"] == "groq/ok-model"
            usage = raw.parse().usage
            assert usage is not None
            assert usage.model_extra is not None
            assert usage.model_extra["cost_usd"] == pytest.approx((1 * 0.5 + 1 * 1.5) / 1e6)
        # Read once the gateway has stopped: request lines are written in batches, up to 50 ms late.
        assert "cost_usd=" in gateway.log()
    headers = {k.lower(): v for k, v in rec.headers[-1].items()}
    assert headers["authorization"] == "Bearer upstream-secret"
    assert "client-key" not in " ".join(headers.values())
    assert "x-api-key" not in headers
