"""Fakes for the cache tests: a clock the test moves, and a scriptable credential source.

``FakeClock`` is both the cache's ``clock`` and its ``sleep``: ``sleep(d)``
parks the caller until the test moves time past ``now + d`` with
:meth:`FakeClock.advance`, so a test jumps hours ahead without waiting.
``advance(..., fire=False)`` moves time without waking sleepers: a late timer,
as in a frozen Lambda sandbox.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials

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


async def settle(max_rounds: int = 10_000) -> None:
    """Let every other task run until all are blocked (anyio's version polls every 0.1 s).

    Like ``anyio.wait_all_tasks_blocked()``, but re-checks after each loop
    iteration instead of sleeping a tenth of a second, so tests stay fast.
    """
    this = asyncio.current_task()
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if all(_blocked(t) for t in asyncio.all_tasks() if t is not this):
            return
    raise AssertionError("tasks did not settle: something is spinning")


def cache_task(name: str = "fake") -> asyncio.Task[Any]:
    """The background task of the cache over the source called ``name`` (found by task name)."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"CredentialCache({name})"]
    return task


def _blocked(task: asyncio.Task[Any]) -> bool:
    waiter = task._fut_waiter  # type: ignore[attr-defined]  # as anyio reads it
    return waiter is not None and not waiter.done()


class FakeClock:
    """A monotonic clock and matching ``sleep`` that only move when the test says so."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        timer = (self.now + delay, anyio.Event())
        self._timers.append(timer)
        try:
            await timer[1].wait()
        finally:
            if timer in self._timers:
                self._timers.remove(timer)

    @property
    def next_timer(self) -> float | None:
        """When the earliest parked sleeper is due (None when nobody sleeps)."""
        return min((t for t, _ in self._timers), default=None)

    def advance(self, seconds: float, *, fire: bool = True) -> None:
        """Move time forward; wake the sleepers now due unless ``fire`` is False."""
        self.now += seconds
        if fire:
            for due, event in list(self._timers):
                if due <= self.now:
                    event.set()

    async def run_until(self, moment: float) -> None:
        """Move to ``moment``, firing due timers one by one and letting tasks react."""
        while True:
            await settle()
            due = self.next_timer
            if due is None or due > moment:
                break
            self.advance(max(0.0, due - self.now))
        self.advance(max(0.0, moment - self.now))
        await settle()


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
        kwargs.setdefault("sleep", clock.sleep)
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
