"""Fakes for the cache tests: a scriptable credential source, and the fixtures.

The clock is :class:`tests.fakes.FakeClock`, the cache's one ``clock``: its
``sleep(d)`` parks the caller until the test moves time past ``now + d`` with
:meth:`~tests.fakes.FakeClock.advance`, so a test jumps hours ahead without
waiting. ``advance(..., fire=False)`` moves time without waking sleepers: a
late timer, as in a frozen Lambda sandbox.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from tests.fakes import FakeClock, settle

__all__ = [
    "SECRET_MARK",
    "TOKEN_MARK",
    "FakeClock",
    "FakeSource",
    "cache_task",
    "make_creds",
    "settle",
]

SECRET_MARK = "SeCrEt"
TOKEN_MARK = "ToKeN"


def make_creds(n: int, ttl: float | None = 3600.0, *, source: str = "fake") -> Credentials:
    """Credential set number ``n``, expiring ``ttl`` seconds from now (None: long-term)."""
    return Credentials(
        access_key_id=f"ASIAFAKE{n:08d}",
        secret_access_key=f"{SECRET_MARK}-{n}-wJalrXUtnFEMI",
        session_token=None if ttl is None else f"{TOKEN_MARK}-{n}-IQoJb3JpZ2luX2Vj",
        expiration=None if ttl is None else datetime.now(UTC) + timedelta(seconds=ttl),
        source=source,
    )


def cache_task(name: str = "fake") -> asyncio.Task[Any]:
    """The background task of the cache over the source called ``name`` (found by task name)."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"CredentialCache({name})"]
    return task


class FakeSource:
    """A source whose ``fetch()`` follows a script, then issues set after set.

    Script items: a ``Credentials`` (returned), an exception (raised), or a
    callable ``n -> Credentials``. ``gate`` (when set) makes each fetch wait on
    it first; ``ttl`` is the lifetime of the generated sets.
    """

    name = "fake"

    def __init__(self, ttl: float | None = 3600.0, clock: FakeClock | None = None) -> None:
        self.ttl = ttl
        self.clock = clock
        self.issued_at: list[float] = []
        self.fetches = 0
        self.completed = 0
        self.script: deque[Any] = deque()
        self.gate: anyio.Event | None = None
        self.started = anyio.Event()
        self.closed = 0
        self.issued: list[Credentials] = []

    async def fetch(self) -> Credentials:
        self.fetches += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        item = self.script.popleft() if self.script else None
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(self.fetches)
        creds = item if isinstance(item, Credentials) else make_creds(self.fetches, self.ttl)
        self.issued.append(creds)
        self.issued_at.append(self.clock.now if self.clock else 0.0)
        self.completed += 1
        return creds

    async def aclose(self) -> None:
        self.closed += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source(clock: FakeClock) -> FakeSource:
    return FakeSource(clock=clock)


@pytest.fixture
def make_cache(clock: FakeClock) -> Callable[..., CredentialCache]:
    """Build caches on the fake clock with a seeded rng (``rng`` etc. overridable)."""

    def build(src: Any, **kwargs: Any) -> CredentialCache:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rng", random.Random(7))
        return CredentialCache(src, **kwargs)

    return build


@pytest.fixture
async def cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> AsyncIterator[CredentialCache]:
    """A started cache over ``source`` whose first fetch has completed."""
    async with make_cache(source) as c:
        await c.get()
        await settle()
        yield c
