"""Request and response bodies for JSON routes: parse a body into a dict (400 on bad JSON), check it
against a wire model (400 naming the field), render JSON answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from local_lattice.errors import InvalidRequest
from local_lattice.security.inputs import decode_json

JSON = "application/json"
_MEMBER = re.compile(r"[\[\]\-]|^[A-Z]")


_JSON_TYPE = (b"content-type", b"application/json")
# Everything printable in ASCII but the escape character itself.
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_value(text: str) -> bytes:
    """``text`` as a response header value: printable ASCII as it is, anything else (control
    characters, other scripts) percent-encoded as UTF-8. Header values carry text from clients
    (a model spec in ``X-Model-Resolution``) and upstreams (model ids): none may split the head,
    and none may make the server refuse to write it."""
    if text.isascii() and text.isprintable():
        return text.encode()
    return quote(text, safe=_HEADER_SAFE).encode()


class JSONBytes(Response):
    """A JSON answer already in bytes. Starlette's ``Response`` with its header list built in one
    step: its own ``init_headers`` copies and scans the headers again, on every answer."""

    def __init__(self, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [_JSON_TYPE, (b"content-length", str(len(body)).encode())]
        if headers:
            raw.extend((k.lower().encode("latin-1"), header_value(v)) for k, v in headers.items())
        self.raw_headers = raw


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(data), status, headers)


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body; on ``generates`` routes the guard has decoded and checked it already."""
    state = request.scope["state"]
    data = state.pop("json") if "json" in state else decode_json(await request.body())
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return data


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], body: dict[str, Any]) -> M:
    """The body as ``model``, or the 400 that names the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        # A union's member shows in the path under its type's name (``constrained-str``, ``list[…]``,
        # ``AgentObject``): the client named none of them.
        where = ".".join(str(part) for part in first["loc"] if not _MEMBER.search(str(part))) or "body"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidRequest(f"{where}: {first['msg']}{more}", param=where, code="invalid_field") from None
