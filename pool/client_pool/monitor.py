"""A CMAP listener counting one client's connections, for warm-up, closing and ``status()``.

Connections are counted per member (server address) too, because
``warm_connections`` is a per-member promise: PyMongo's ``minPoolSize``
(which warm-up raises to ``warm_connections`` while it fills; see
:mod:`pool.client_pool.filling`) applies to each server's pool, and traffic
goes to the primary and, for ``secondaryPreferred`` reads, to the
secondaries. :func:`warm_members` names the members a warm-up must fill.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from pymongo import monitoring
from pymongo.server_type import SERVER_TYPE

from pool.client_pool.status import ConnectionCounts
from pool.telemetry.cmap import CmapSink

__all__ = ["ConnectionMonitor", "warm_members"]

Address = tuple[str, int | None]

#: Members that serve operations (arbiters, ghosts and "other" members do not).
_DATA_BEARING = frozenset(
    {
        SERVER_TYPE.Standalone,
        SERVER_TYPE.RSPrimary,
        SERVER_TYPE.RSSecondary,
        SERVER_TYPE.Mongos,
        SERVER_TYPE.LoadBalancer,
    }
)


def warm_members(client: Any) -> list[Address]:
    """The members of ``client``'s topology a warm-up fills: data-bearing, or not checked yet.

    A member still Unknown because its monitor has not finished a first
    check is included (its pool is paused until then, so counting it out
    would declare a client warm with no connection there: measured on the
    replica-set stand-in with one member 50 ms slower, 0 of 8); one whose
    check failed (down, unreachable) is not waited for. Reads PyMongo's
    public ``topology_description`` (PyMongo 4.20; Motor delegates it).
    """
    members = []
    for address, sd in client.topology_description.server_descriptions().items():
        unchecked = sd.server_type == SERVER_TYPE.Unknown and sd.error is None
        if sd.server_type in _DATA_BEARING or unchecked:
            members.append(address)
    return members


class ConnectionMonitor(monitoring.ConnectionPoolListener):
    """A CMAP listener counting one client's connections.

    Thread-safe: Motor publishes events from its worker threads. ``ready`` is
    the number of connections currently open and authenticated; ``in_use``
    the number checked out by operations right now; ``waiting`` the number of
    operations waiting to check one out (the telemetry's ``pending_requests``;
    ``pending`` is connections being opened). ``sink``, once the telemetry
    binds one, receives the connection and check-out durations.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by (member, id): CMAP connection ids count per server pool, so
        # ids alone collide on a replica set (PyMongo 4.20 Pool.next_connection_id).
        self._ready: set[tuple[Address, int]] = set()
        self._pending: set[tuple[Address, int]] = set()
        self._per_member: Counter[Address] = Counter()
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.created = 0
        self.closed = 0
        self.in_use = 0
        self.peak_in_use = 0
        self.waiting = 0  # operations waiting to check a connection out (started, not ended)
        self.sink: CmapSink | None = None  # durations to the telemetry, once bound

    @property
    def ready(self) -> int:
        """Connections open and authenticated at this instant (monitoring ones excluded)."""
        return len(self._ready)

    def ready_on(self, member: Address) -> int:
        """Connections open and authenticated to ``member`` at this instant."""
        with self._lock:
            return self._per_member[member]

    def short_of(self, target: int, members: list[Address]) -> bool:
        """Whether any of ``members`` has fewer than ``target`` ready connections.

        With no member known yet, whether the client as a whole is short.
        """
        with self._lock:
            if not members:
                return len(self._ready) < target
            return any(self._per_member[m] < target for m in members)

    def fewest(self, members: list[Address]) -> int:
        """The ready connections of the member with fewest (the whole client's if none known)."""
        with self._lock:
            return min((self._per_member[m] for m in members), default=len(self._ready))

    def smallest_shortfall(self, target: int, members: list[Address]) -> int:
        """The fewest connections any member still short of ``target`` lacks (0 if none is)."""
        with self._lock:
            counts = [self._per_member[m] for m in members] or [len(self._ready)]
        short = [target - n for n in counts if n < target]
        return min(short, default=0)

    def open_by_member(self) -> Counter[Address]:
        """Connections open or being opened, per member, at this instant (what a server counts)."""
        with self._lock:
            counts = Counter(self._per_member)
            for address, _id in self._pending:
                counts[address] += 1
            return counts

    def ready_by_member(self) -> dict[str, int]:
        """``{"host:port": ready connections}``, for logs and ``status()``."""
        with self._lock:
            return {f"{h}:{p}": n for (h, p), n in sorted(self._per_member.items()) if n}

    @property
    def pending(self) -> int:
        """Connections being opened at this instant (TCP, handshake or authentication)."""
        return len(self._pending)

    def snapshot(self) -> ConnectionCounts:
        """The counters at this instant (for ``status()``)."""
        with self._lock:
            per_member = {f"{h}:{p}": n for (h, p), n in sorted(self._per_member.items()) if n}
            return ConnectionCounts(
                open=len(self._ready),
                in_use=self.in_use,
                peak_in_use=self.peak_in_use,
                pending=len(self._pending),
                created=self.created,
                closed=self.closed,
                per_member=per_member,
            )

    async def wait_change(self, limit: float | None = None) -> None:
        """Return at the next connection event, or after ``limit`` real seconds.

        Real time on purpose: it bounds a wait on real I/O.
        """
        event = asyncio.Event()
        watcher = (asyncio.get_running_loop(), event)
        with self._lock:
            self._watchers.add(watcher)
        try:
            async with asyncio.timeout(limit):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._watchers.discard(watcher)

    def _changed(self) -> None:
        # Called with the lock held, from the loop's thread or Motor's.
        for loop, event in self._watchers:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        with self._lock:
            self.created += 1
            self._pending.add((event.address, event.connection_id))
            self._changed()

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        key = (event.address, event.connection_id)
        with self._lock:
            self._pending.discard(key)
            if key not in self._ready:
                self._ready.add(key)
                self._per_member[event.address] += 1
            self._changed()
        if (sink := self.sink) is not None:
            sink.connection_ready(event.duration)

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        with self._lock:
            self.closed += 1
            key = (event.address, event.connection_id)
            self._pending.discard(key)
            if key in self._ready:
                self._ready.discard(key)
                self._per_member[event.address] -= 1
            self._changed()

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        with self._lock:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            self.waiting -= 1
        if (sink := self.sink) is not None:
            sink.checked_out(event.duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        with self._lock:
            self.in_use -= 1

    # The remaining CMAP events carry nothing the pool needs.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        with self._lock:
            self.waiting += 1

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        with self._lock:
            self.waiting -= 1
