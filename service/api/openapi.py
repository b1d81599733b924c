"""The OpenAPI 3.1 document of the HTTP API, built from its route table and the schemas below."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from service import __version__


class _Route(Protocol):
    """What the document needs of a route (``service.api.http.Route``)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def body(self) -> str | None: ...
    @property
    def response(self) -> str | None: ...
    @property
    def status(self) -> int: ...
    @property
    def admin(self) -> bool: ...
    @property
    def params(self) -> tuple[str, ...]: ...


def _obj(properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TARGET = {
    "oneOf": [
        _obj(
            {
                "telegram": {
                    "type": ["integer", "string"],
                    "description": "a chat id; the chat must have linked itself to your key",
                }
            },
            ["telegram"],
        ),
        _obj(
            {
                "webhook": _obj(
                    {
                        "url": _STR,
                        "secret": {
                            "oneOf": [_STR, {"type": "array", "items": _STR}],
                            "description": "whsec_ + base64 of 24-64 bytes, or 16-256 "
                            "printable characters (a list while rotating); read back as ***",
                        },
                    },
                    ["url", "secret"],
                )
            },
            ["webhook"],
        ),
    ]
}
_MODE = {"type": "string", "enum": ["auto", "instant", "digest"]}
_HIGHLIGHT = _obj({"start": _INT, "end": _INT, "text": _STR})

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": _STR,
                    "message": _STR,
                    "position": {**_INT, "description": "invalid_query only"},
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
    "Target": _TARGET,
    "Subscription": _obj(
        {
            "id": _STR,
            "name": _STR,
            "query": _STR,
            "targets": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}},
            "paused": _BOOL,
            "mode": _MODE,
            "mute_until": {"type": ["number", "null"]},
            "owner": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
        },
        ["id", "query"],
    ),
    "SubscriptionList": _obj(
        {"subscriptions": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}}}
    ),
    "SubscriptionCreate": _obj(
        {
            "id": _STR,
            "name": _STR,
            "query": _STR,
            "paused": _BOOL,
            "mode": _MODE,
            "targets": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}},
        },
        ["query"],
    ),
    "SubscriptionUpdate": _obj(
        {
            "name": _STR,
            "query": _STR,
            "paused": _BOOL,
            "mode": _MODE,
            "targets": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}},
        }
    ),
    "TestRequest": _obj(
        {
            "query": _STR,
            "channels": {"type": "array", "items": _STR},
            "limit": {**_INT, "description": "recent posts per channel"},
        },
        ["query"],
    ),
    "TestResult": _obj(
        {
            "scanned": _INT,
            "channels": _INT,
            "total_hits": _INT,
            "truncated": {**_BOOL, "description": "the post or time budget ran out first"},
            "hits": {
                "type": "array",
                "items": _obj(
                    {
                        "post": _STR,
                        "link": _STR,
                        "channel": _STR,
                        "date": _STR,
                        "text": _STR,
                        "highlights": {"type": "array", "items": _HIGHLIGHT},
                    }
                ),
            },
        }
    ),
    "AlertPage": _obj(
        {
            "alerts": {
                "type": "array",
                "items": _obj(
                    {
                        "stream_id": _STR,
                        "id": _STR,
                        "subscription_id": _STR,
                        "post": {"type": "object"},
                        "highlights": {"type": "array", "items": _HIGHLIGHT},
                        "matched_at": {"type": "number"},
                        "edited_now_matches": _BOOL,
                        "also_in": {"type": "array", "items": _STR},
                    }
                ),
            },
            "next_before": {
                "type": ["string", "null"],
                "description": "pass as ?before= for the next page",
            },
        }
    ),
    "EndpointList": _obj(
        {
            "endpoints": {
                "type": "array",
                "items": _obj(
                    {"id": _STR, "url": _STR, "subscriptions": {"type": "array", "items": _STR}}
                ),
            }
        }
    ),
    "DeliveryLog": _obj(
        {
            "endpoint": _STR,
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "one attempt: time, status, latency, error",
                },
            },
        }
    ),
    "Redelivered": _obj({"alert": _STR, "redelivered": _INT}),
    "Channels": _obj(
        {
            name: {"type": "array", "items": _STR}
            for name in ("polled", "added", "configured", "stored")
        }
    ),
    "ChannelAdd": _obj({"channel": {**_STR, "examples": ["@durov"]}}, ["channel"]),
    "ChannelAdded": _obj({"channel": _STR, "added": _BOOL}),
    "LinkCode": _obj(
        {
            "code": {**_STR, "description": "one-time; the chat sends /link CODE to the bot"},
            "expires_in": {**_INT, "description": "seconds"},
            "send_to_bot": _STR,
        }
    ),
    "LinkedChats": _obj({"chats": {"type": "array", "items": _INT}}),
}

_ERRORS = {
    "400": "Invalid JSON, or an invalid query (with its position)",
    "401": "Missing or unknown API key",
    "404": "Not found",
    "409": "Already exists (one of your own)",
    "413": "Body too large",
    "422": "A field is missing, of the wrong type or out of range; a refused target; a limit",
    "429": "Rate limited (Retry-After says when to try again)",
    "500": "An internal error (logged)",
    "503": "The store is unavailable",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def build_openapi(routes: Iterable[_Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        public = route.path.endswith("/openapi.json")
        responses: dict[str, Any] = {}
        if route.response:
            responses[str(route.status)] = {
                "description": route.summary,
                "content": {"application/json": {"schema": _ref(route.response)}},
            }
        else:
            responses[str(route.status)] = {"description": route.summary}
        if not public:
            responses.update({code: _error(text) for code, text in _ERRORS.items()})
        if route.admin:
            responses["403"] = _error("Needs an admin key")
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": re.sub(r"\W+", "_", f"{route.method} {route.path}").strip("_").lower(),
            "responses": responses,
        }
        params = re.findall(r"{(\w+)}", route.path)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": _STR} for name in params
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": _STR if name == "before" else _INT,
            }
            for name in route.params
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.body)}},
            }
        if public:
            operation["security"] = []
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tgwatch API",
            "version": __version__,
            "description": "Subscriptions, query tests, alerts, deliveries (docs/api.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": SCHEMAS,
        },
    }
