"""``max_connections_per_member``: a cap on what one pool opens to a member across its clients.

During a rotation two clients are open: the one serving (or draining) and
the one warming (or newly serving). Without a cap the peak per member is the
old client's connections plus the new one's: up to ``2 x maxPoolSize``, which
a fleet near its Atlas tier's limit cannot afford. With
``ClientPool(max_connections_per_member=N)`` the pool keeps every member's
application connections of this process at or below ``N`` (plus the driver's
monitoring connections, two per client per member, which no pool setting
governs), by two rules:

* **Warm-up** opens ``min(warm_connections, N - (the serving client's
  connections on its busiest member))``, never fewer than one (the ping that
  proves the credentials). A capped warm-up is logged (``pool.warmup_capped``).
* **Admission**: while more than one client is open, a lease on the newest
  serving client is admitted only if it needs no new connection (the client
  already has as many open on every member as leases) or if the new
  connection still fits: ``leases <= N - (the other clients' connections on
  that member)``. Otherwise it waits, without holding a lease, until a
  connection of the other client closes, a lease ends, or the other client
  is closed (when its last lease ends, or at its drain bound). In steady
  state (one client) nothing waits and the hot path pays one comparison.

The cost is named: while an old client drains, the new one serves at most
``N - (old connections)`` operations at once. Leases that hold the old
client for long (cursors, sessions) keep its connections open, so set
``drain_timeout`` to bound how long. The bound assumes one connection per
lease at a time (``asyncio.gather`` inside one lease may use more).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pool.client_pool.monitor import Address, ConnectionMonitor, warm_members

__all__ = ["ConnectionBudget", "capped_warm", "fits"]

# Real seconds an admission waits before looking again when no event came
# (a connection event of another client's monitor wakes it sooner).
_RECHECK = 0.25


def capped_warm(warm: int, limit: int, serving: Counter[Address] | None) -> int:
    """How many connections per member a warm-up may open next to ``serving``'s."""
    busiest = max(serving.values(), default=0) if serving else 0
    return max(1, min(warm, limit - busiest))


def fits(
    leases: int,
    limit: int,
    own: Counter[Address],
    others: Counter[Address],
    members: Iterable[Address],
) -> bool:
    """Whether one more lease (``leases`` counts it) stays within ``limit`` on every member.

    Pure: ``own`` is the leased client's open connections per member,
    ``others`` the other open clients' summed, ``members`` where the lease
    may go.
    """
    for member in {*members, *own}:
        if leases > own[member] and others[member] + leases > limit:
            return False
    return True


class ConnectionBudget:
    """The admission side of ``max_connections_per_member``; event-loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0  # admissions waiting right now
        self.waited = 0  # admissions that had to wait (for status and tests)
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A lease ended or a client closed: waiters look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def admits(self, gen: Any, others: list[ConnectionMonitor]) -> bool:
        """Whether ``gen`` (a Generation whose ``leases`` counts the new lease) may serve it,
        next to the connections ``others`` (the other clients' monitors) hold."""
        held: Counter[Address] = Counter()
        for monitor in others:
            held.update(monitor.open_by_member())
        own = gen.handle.monitor.open_by_member()
        return fits(gen.leases, self.limit, own, held, warm_members(gen.handle.client))

    async def wait(self, monitors: list[ConnectionMonitor]) -> None:
        """Until a lease ends, a client closes or one of ``monitors`` sees a connection event."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
        waits += [asyncio.ensure_future(m.wait_change(_RECHECK)) for m in monitors]
        self.waiting += 1
        try:
            await asyncio.wait(waits, timeout=_RECHECK, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting -= 1
            for w in waits:
                w.cancel()
