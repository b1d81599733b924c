"""The request side of the HTTP API: bodies and parameters decoded and checked, or an ApiError.

A body is hostile input read at the item boundary: whatever its bytes (not UTF-8, not JSON,
``NaN``, ``1e999``, an integer of 5,000 digits, an unpaired surrogate, nesting 100,000 deep), it
becomes a dict of plain JSON values or an ``ApiError`` with the documented code; nothing else
comes out (``tests/security/test_fuzz.py`` holds that to hypothesis). The request fields of the
subscription routes are read here too, as plain functions of that dict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service import constants
from service.store.subscribers import MODES, SUBSCRIPTION_ID_RE


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", ...}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, headers=headers)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_tree(data: Any) -> None:
    """Depth at most API_JSON_MAX_DEPTH and every string encodable (no unpaired surrogate)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict | list):
            if depth > constants.API_JSON_MAX_DEPTH:
                raise ApiError(
                    422, "invalid_body", f"nested deeper than {constants.API_JSON_MAX_DEPTH}"
                )
            values = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for key, value in values:
                if key is not None:
                    stack.append((key, depth))
                stack.append((value, depth + 1))


def decode_json_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; ApiError (400 invalid_json, 422 invalid_body)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8") from None
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    try:
        _check_tree(data)
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json", "the body holds an unpaired surrogate") from None
    return data


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (413 from aiohttp past API_MAX_BODY_BYTES)."""
    return decode_json_body(await request.read())


def field(
    data: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    default: Any = None,
    required: bool = False,
) -> Any:
    if name not in data or data[name] is None:
        if required:
            raise ApiError(422, "invalid_body", f'"{name}" is required')
        return default
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ApiError(422, "invalid_body", f'"{name}" has the wrong type')
    return value


def text_field(
    data: dict[str, Any], name: str, default: str | None = None, *, required: bool = False,
    max_chars: int = constants.API_TEXT_MAX_CHARS,
) -> str | None:  # fmt: skip
    value = field(data, name, str, default, required)
    if value is not None and len(value) > max_chars:
        raise ApiError(422, "invalid_body", f'"{name}" is longer than {max_chars} characters')
    return value  # type: ignore[no-any-return]


def int_param(raw: str | None, name: str, default: int, high: int) -> int:
    """A query-string integer in 1..``high``."""
    if raw is None:
        return default
    if len(raw) > 12 or not raw.isascii() or not raw.isdigit():
        raise ApiError(422, "invalid_parameter", f'"{name}" must be an integer')
    value = int(raw)
    if not 1 <= value <= high:
        raise ApiError(422, "invalid_parameter", f'"{name}" must be between 1 and {high}')
    return value


def mode_field(data: dict[str, Any], default: str) -> str:
    mode = field(data, "mode", str, default)
    if mode not in MODES:
        raise ApiError(422, "invalid_body", f'"mode" must be one of {", ".join(MODES)}')
    return str(mode)


@dataclass(frozen=True, slots=True)
class SubscriptionFields:
    """What a create or change request says (None: not given)."""

    id: str | None = None
    query: str | None = None
    name: str | None = None
    targets: list[Any] | None = None
    paused: bool | None = None
    mode: str | None = None


CREATE_FIELDS = frozenset({"id", "query", "name", "targets", "paused", "mode"})
UPDATE_FIELDS = CREATE_FIELDS - {"id"}


def subscription_fields(data: dict[str, Any], *, create: bool) -> SubscriptionFields:
    """The fields of a create (``query`` required, ``id`` allowed) or change request."""
    unknown = set(data) - (CREATE_FIELDS if create else UPDATE_FIELDS)
    if unknown:
        names = ", ".join(sorted(str(name)[:40] for name in unknown)[:5])
        raise ApiError(422, "invalid_body", f"unknown fields: {names}")
    sub_id = text_field(data, "id") if create else None
    if sub_id is not None and not SUBSCRIPTION_ID_RE.fullmatch(sub_id):
        raise ApiError(422, "invalid_body", 'an "id" holds up to 64 letters, digits, "_", "-", "."')
    targets = field(data, "targets", list)
    if targets is not None and len(targets) > constants.SUBSCRIPTION_TARGETS_MAX:
        raise ApiError(
            422, "invalid_target", f"at most {constants.SUBSCRIPTION_TARGETS_MAX} targets"
        )
    mode = field(data, "mode", str)
    if mode is not None and mode not in MODES:
        raise ApiError(422, "invalid_body", f'"mode" must be one of {", ".join(MODES)}')
    return SubscriptionFields(
        id=sub_id,
        query=text_field(data, "query", required=create, max_chars=constants.QUERY_MAX_LENGTH),
        name=text_field(data, "name"),
        targets=targets,
        paused=field(data, "paused", bool),
        mode=mode,
    )


@dataclass(frozen=True, slots=True)
class QueryTestFields:
    query: str
    channels: list[str] | None
    limit: int


def query_test_fields(data: dict[str, Any]) -> QueryTestFields:
    """The fields of a query test request."""
    query = text_field(data, "query", required=True, max_chars=constants.QUERY_MAX_LENGTH)
    channels = field(data, "channels", list)
    if channels is not None and (
        len(channels) > constants.TEST_MAX_CHANNELS
        or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in channels)
    ):
        raise ApiError(
            422, "invalid_body",
            f'"channels" must be a list of at most {constants.TEST_MAX_CHANNELS} usernames',
        )  # fmt: skip
    limit = field(data, "limit", int, constants.TEST_POSTS_PER_CHANNEL)
    if not 1 <= limit <= constants.RECENT_POSTS_PER_CHANNEL:
        raise ApiError(422, "invalid_body", '"limit" is out of range')
    assert query is not None  # required
    return QueryTestFields(query, channels, int(limit))
