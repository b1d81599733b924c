"""What every API handler shares: the app's clients and settings, and who the caller is.

A key sees and changes what its owner owns; an admin key (the operator's) sees everything. A
tenant addresses its subscriptions by its own ids (``service.store.subscription.scoped_id``),
an admin by their stored ids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from aiohttp import web

from service.config import LimitSettings
from service.core.targets import TargetPolicy
from service.store.apikeys import ApiKey, ApiKeyStore
from service.store.quotas import RequestBudget
from service.store.subscribers import StoredSubscription, SubscriberStore, public_id, scoped_id


@dataclass
class ApiContext:
    """The app's clients and settings, built once in ``build_app``."""

    client: redis.Redis
    store: SubscriberStore
    keys: ApiKeyStore
    static_channels: list[str]
    policy: TargetPolicy
    limits: LimitSettings
    tests: ThreadPoolExecutor  # query tests run here, off the default pool
    test_budget: RequestBudget


CONTEXT = web.AppKey("context", ApiContext)
API_KEY = web.RequestKey("api_key", ApiKey)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def caller(request: web.Request) -> ApiKey:
    return request[API_KEY]


def owner_scope(request: web.Request) -> str | None:
    """Whose objects this request may touch: the key's owner, or everyone's for an admin."""
    key = caller(request)
    return None if key.admin else key.owner


def stored_id(request: web.Request, given: str) -> str:
    """The stored id of the subscription the caller calls ``given``."""
    key = caller(request)
    return given if key.admin else scoped_id(given, key.owner)


def shown(request: web.Request, sub: StoredSubscription) -> dict[str, object]:
    """A subscription as the caller sees it: by the caller's own id, secrets hidden."""
    data = sub.to_dict()
    if not caller(request).admin:
        data["id"] = public_id(sub.id, sub.owner)
        if data["name"] == sub.id:
            data["name"] = data["id"]
    return data


def shown_subscription_id(request: web.Request, subscription_id: str) -> str:
    key = caller(request)
    return subscription_id if key.admin else public_id(subscription_id, key.owner)
