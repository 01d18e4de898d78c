"""``max_connections_per_member``: a cap on what one pool opens to a member across its clients.

During a rotation two clients are open: the one serving (or draining) and
the one warming (or newly serving). Without a cap the peak per member is the
old client's connections plus the new one's: up to ``2 x maxPoolSize``, which
a fleet near its Atlas tier's limit cannot afford. With
``ClientPool(max_connections_per_member=N)`` (at least ``maxPoolSize + 1``,
or ``+ minPoolSize``) the pool keeps every member's application connections
of this process at or below ``N`` (plus the driver's monitoring connections,
two per client per member, which no pool setting governs). What a client
*may hold* on a member (:func:`holding`) is its open connections, at least
one per lease it has out (a lease may open one) and, while it warms, its
whole warm-up target; never more than its ``maxPoolSize``. Then:

* **Warm-up** opens ``min(warm_connections, N - what the other clients may
  hold on the busiest member)``, never fewer than one (the ping that proves
  the credentials); the target is reserved for the whole warm-up, paced or
  not. A capped warm-up is logged (``pool.warmup_capped``).
* **Admission**: while more than one client is open (a closing one counts
  until closed), a lease is admitted if it needs no new connection (its
  client has as many open on every member as leases) or if one still fits
  next to what the others may hold; otherwise it waits, holding nothing,
  until a connection closes, a lease ends or a client closes. A task that
  already holds a lease of this pool is admitted at once (it may be what
  keeps the old client open: waiting would deadlock), and a wait longer
  than ``warmup_timeout`` is admitted past the cap with a warning. In steady
  state (one client) nothing waits and the hot path pays one comparison.

The cost is named: while an old client drains, the new one serves fewer
operations at once. Leases that hold the old client for long (cursors,
sessions) keep its connections open, so set ``drain_timeout`` to bound how
long. The bound assumes one connection per lease at a time
(``asyncio.gather`` inside one lease may use more), and PyMongo's own
once-a-second fill may add one to a warm-up round it coincides with (see
:mod:`pool.client_pool.warmup`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pool.client_pool.monitor import Address, ConnectionMonitor, warm_members

__all__ = ["ConnectionBudget", "capped_warm", "fits", "holding"]

# Real seconds an admission waits before looking again when no event came
# (a connection event of another client's monitor wakes it sooner).
_RECHECK = 0.25


def capped_warm(warm: int, limit: int, serving: Counter[Address] | None) -> int:
    """How many connections per member a warm-up may open next to ``serving``'s."""
    if warm == 0:
        return 0
    busiest = max(serving.values(), default=0) if serving else 0
    return max(1, min(warm, limit - busiest))


def holding(gen: Any) -> Counter[Address]:
    """What a generation may hold per member: its open connections, and at least one per
    lease (a lease may open one) and, while warming, its warm-up target; never more than
    its ``maxPoolSize``."""
    handle = gen.handle
    counts: Counter[Address] = handle.monitor.open_by_member()
    reserved = handle.reserved if gen.state == "warming" else 0
    floor = min(max(gen.leases, reserved), handle.max_pool_size)
    if floor:
        for member in {*warm_members(handle.client), *counts}:
            counts[member] = max(counts[member], int(floor))
    return counts


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
        self.overruns = 0  # admissions that gave up waiting and went past the cap
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A lease ended or a client closed: waiters look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def admits(self, gen: Any, held: Counter[Address]) -> bool:
        """Whether ``gen`` (a Generation whose ``leases`` counts the new lease) may serve it,
        next to what the other clients hold (``held``, per member)."""
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
