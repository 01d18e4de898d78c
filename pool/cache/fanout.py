"""Telling subscribers and listeners about new credential sets without ever waiting on them.

The cache calls :meth:`Fanout.publish` from its background task after each
rotation. Publishing never awaits: each subscriber has a bounded buffer that
keeps the newest sets (the oldest buffered set is dropped on overflow, it is
superseded anyway), synchronous listeners are called inline, and each
asynchronous listener runs in its own task that drains its own buffer, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from pool._internal.log import get_logger
from pool._internal.shield import finish
from pool.credentials import Credentials

__all__ = ["DEFAULT_SUBSCRIBER_BUFFER", "Fanout", "Subscription"]

#: How many undelivered credential sets a subscriber (or async listener) keeps.
DEFAULT_SUBSCRIBER_BUFFER = 8

_log = get_logger("pool.cache")


class Subscription:
    """An async iterator over credential sets, from :meth:`pool.CredentialCache.subscribe`.

    Yields each set in order. When more than ``maxlen`` sets are waiting, the
    oldest waiting one is dropped and counted in :attr:`dropped`. Iteration ends
    once the cache closes (after the sets already buffered) or after
    :meth:`aclose`. One consumer per subscription; the cache keeps only a weak
    reference, so a subscription nobody iterates any more goes away by itself.
    """

    __slots__ = ("__weakref__", "_buffer", "_ended", "_wakeup", "dropped")

    def __init__(self, maxlen: int) -> None:
        self._buffer: deque[Credentials] = deque(maxlen=maxlen)
        self._wakeup = anyio.Event()
        self._ended = False
        self.dropped = 0

    def push(self, creds: Credentials) -> None:
        """Buffer ``creds`` for the consumer; never blocks."""
        if self._ended:
            return
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(creds)
        self._wakeup.set()

    def end(self) -> None:
        """No more sets will come; the consumer stops after draining the buffer."""
        self._ended = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Credentials:
        while not self._buffer:
            if self._ended:
                raise StopAsyncIteration
            # An Event cannot be cleared: replace it before waiting. Nothing
            # awaits between the emptiness check and here, so no push is lost.
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop this subscription now, dropping what is buffered."""
        self._buffer.clear()
        self.end()


@dataclass(eq=False)
class _Listener:
    callback: Callable[[Credentials], object]
    is_async: bool
    subscription: Subscription | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Fanout:
    """Subscribers and listeners of one cache. Not thread-safe: event-loop only."""

    def __init__(self, buffer: int = DEFAULT_SUBSCRIBER_BUFFER) -> None:
        self._buffer = buffer
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._listeners: list[_Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def counts(self) -> tuple[int, int]:
        """(live subscriptions, listeners)."""
        return len(self._subscriptions), len(self._listeners)

    def subscribe(self, current: Credentials | None) -> Subscription:
        """A new subscription, primed with ``current`` when given."""
        sub = Subscription(self._buffer)
        if self._closed:
            sub.end()
            return sub
        if current is not None:
            sub.push(current)
        self._subscriptions.add(sub)
        return sub

    def add_listener(self, callback: Callable[[Credentials], object]) -> Callable[[], None]:
        """Register ``callback``; returns a function that unregisters it (idempotent)."""
        listener = _Listener(callback, is_async=inspect.iscoroutinefunction(callback))
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if listener.subscription is not None:
                listener.subscription.end()
            if listener.task is not None:
                listener.task.cancel()

        return remove

    def publish(self, creds: Credentials) -> None:
        """Hand ``creds`` to every subscriber and listener; never awaits, never raises."""
        for sub in list(self._subscriptions):
            sub.push(creds)
        for listener in list(self._listeners):
            if listener.is_async:
                self._deliver_async(listener, creds)
            else:
                self._call_sync(listener, creds)

    def _call_sync(self, listener: _Listener, creds: Credentials) -> None:
        try:
            result = listener.callback(creds)
        except Exception as exc:
            _log_listener_failure(listener, exc)
            return
        if inspect.isawaitable(result):
            # A plain function that returned an awaitable (a lambda around an
            # async function): run it, tracked, but without ordering guarantees.
            self._track(asyncio.ensure_future(_guard(listener, result)))

    def _deliver_async(self, listener: _Listener, creds: Credentials) -> None:
        if listener.subscription is None:
            listener.subscription = Subscription(self._buffer)
            listener.task = self._track(
                asyncio.get_running_loop().create_task(_drain(listener, listener.subscription))
            )
        listener.subscription.push(creds)

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self, caller: asyncio.Task[Any] | None = None) -> None:
        """End every subscription, stop every listener task and wait for them to finish.

        ``caller`` is the task that asked the cache to close (default: this
        one): when it is a listener's own task it is not waited on, since it is
        itself waiting for this close.
        """
        caller = caller or asyncio.current_task()
        self._closed = True
        for sub in list(self._subscriptions):
            sub.end()
        for listener in self._listeners:
            if listener.subscription is not None:
                listener.subscription.end()
        self._listeners.clear()
        # An async listener may itself be closing the cache: never wait on it.
        tasks = [t for t in self._tasks if t is not caller and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await finish(asyncio.wait(tasks), name="CredentialCache listeners: wait")


async def _drain(listener: _Listener, subscription: Subscription) -> None:
    async for creds in subscription:
        await _guard(listener, listener.callback(creds))  # type: ignore[arg-type]


async def _guard(listener: _Listener, awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception as exc:
        _log_listener_failure(listener, exc)


def _log_listener_failure(listener: _Listener, exc: Exception) -> None:
    # The class only: a user callback's message is not ours to vouch for.
    name = getattr(listener.callback, "__qualname__", type(listener.callback).__name__)
    _log.warning("cache.listener.failed", listener=name, error_class=type(exc).__name__)
