"""Keys never reach logs or rendered errors."""

from __future__ import annotations

import logging

import pytest

from local_lattice.errors import UpstreamError
from local_lattice.masking import redact
from local_lattice.security.redact import LogFilter, Redactor


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("upstream said: invalid key sk-proj-abcdef123456", "sk-proj-abcdef123456"),
        ("headers: Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi.x.y"),
        ('{"x-api-key": "topsecret9"}', "topsecret9"),
        ("GET /v1/models?api_key=hunter22&x=1", "hunter22"),
    ],
)
def test_key_shapes_are_masked(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_literal_keys_are_masked_but_short_ones_and_plain_words_left() -> None:
    redactor = Redactor(["correct-horse-battery", "abc"])
    assert redactor.text("key correct-horse-battery used") == "key *** used"
    assert redactor.text("abc is fine") == "abc is fine"


def test_error_envelope_masks_echoed_keys() -> None:
    error = UpstreamError("backend 'x' answered 401: Incorrect API key provided: sk-live-1234567890")
    assert "sk-live-1234567890" not in error.envelope()["error"]["message"]


def test_log_filter_masks_keys_in_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("lattice.test.redact")
    log_filter = LogFilter(Redactor(["my-very-secret-key"]))
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger="lattice.test.redact"):
            logger.info("client sent %s and %s", "my-very-secret-key", "Bearer sk-abcdefgh")
            try:
                raise ValueError("boom my-very-secret-key")
            except ValueError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(log_filter)
    text = caplog.text
    assert "my-very-secret-key" not in text
    assert "sk-abcdefgh" not in text


@pytest.mark.parametrize(
    "text",
    [
        "plain words, nothing secret here",
        "Bearer\tabc.def",
        "BEARER xyz123",
        "x-\u0130\u0131api-KEY: zzz",
        "x-api-\u212aey= zzz",
        "ACCESS_TOKEN=abcdef&x=1",
        "apikey=v1 api-key=v2 api_key=v3",
        "sk-ABCDEF123 and SK-abcdefgh",
        "\u017fk-abcdefgh1",
        "model=nginx-json/fixed-json request_id=07cafa7f8d0024d6 status=200",
    ],
)
def test_the_fast_path_never_changes_what_the_patterns_mask(text: str) -> None:
    from local_lattice import masking as module

    slow = text
    for pattern, replacement in module._PATTERNS:
        slow = pattern.sub(replacement, slow)
    assert redact(text) == slow
