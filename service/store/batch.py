"""Many Redis commands in one round trip, Lua scripts included, for the stores' batch paths.

redis-py's ``Script`` in a pipeline asks the server whether the scripts exist before every
``execute`` (one more round trip per batch). A ``Batch`` sends scripts by digest (EVALSHA) and,
in the rare case the server lost them (a restart, ``SCRIPT FLUSH``), loads them and runs the
calls that failed again, one by one, in their order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class LuaScript:
    """A Lua script and its SHA1 digest (what EVALSHA names it by)."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)

    def __call__(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script now (one round trip; it is loaded first when the server lacks it)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


class Batch:
    """Commands queued on ``pipe`` (a redis-py pipeline: plain, or a MULTI/EXEC transaction
    with ``transaction=True``), run in one round trip by ``execute``."""

    def __init__(self, client: redis.Redis, *, transaction: bool = False) -> None:
        self.client = client
        self.pipe = client.pipeline(transaction=transaction)
        if transaction:
            # MULTI from the start, so RQ can enqueue jobs in it (it would issue MULTI itself
            # and refuse once other commands were queued).
            self.pipe.multi()
        self._scripts: dict[int, tuple[LuaScript, Sequence[Any], Sequence[Any]]] = {}

    def __len__(self) -> int:
        return len(self.pipe)

    def script(self, script: LuaScript, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self._scripts[len(self.pipe)] = (script, keys, args)
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)

    def execute(self) -> list[Any]:
        """Every reply, in order; raises the first error that is not a missing script."""
        if not len(self.pipe):
            return []
        replies = list(self.pipe.execute(raise_on_error=False))
        for at, reply in enumerate(replies):
            if isinstance(reply, NoScriptError) and at in self._scripts:
                script, keys, args = self._scripts[at]
                replies[at] = script(self.client, keys, args)
            elif isinstance(reply, Exception):
                raise reply
        return replies
