"""Security decisions as pure code: key matching, rate limits, request-size limits, CORS, redaction.

Nothing here does I/O or knows ASGI; the API layer's middleware calls these and writes the answers.
"""
