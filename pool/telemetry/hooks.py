"""The hooks the cache and the pool call, one line per event, and the spans they open.

:class:`CacheTelemetry` times each credential fetch (a span, a counter, a
histogram); :class:`PoolTelemetry` each rotation (a span with a child span
for the warm-up and one for the drain of the client it replaced) and answers
the observable instruments' callbacks from the pool's own counters. Both
keep the last figures for ``status()``, with or without OpenTelemetry.

No attribute carries a secret, a key or an error message: source names,
generation numbers, and the fixed words of :mod:`pool.telemetry.classify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pool.telemetry import _otel
from pool.telemetry.classify import error_type, refresh_reason
from pool.telemetry.cmap import CmapSink

if TYPE_CHECKING:
    from pool.telemetry.instruments import Telemetry

__all__ = ["CacheTelemetry", "PoolTelemetry"]

P = "mongodb_aws_pool."
DB = {"db.system.name": "mongodb"}
DEFAULT_MAX_POOL_SIZE = 100  # PyMongo's default maxPoolSize

Observations = Iterator[tuple[float, dict[str, Any]]]


def _span(tel: Telemetry, name: str, attributes: dict[str, Any], parent: Any = None) -> Any:
    if tel.tracer is None:
        return _otel.NULL_SPAN
    context = None if parent is None else _otel.api.trace.set_span_in_context(parent)
    return tel.tracer.start_span(name, context=context, attributes=attributes)


def _end(span: Any, outcome: str, error: str | None = None) -> None:
    span.set_attribute(P + "outcome", outcome)
    if error is not None:
        span.set_attribute("error.type", error)
        if span is not _otel.NULL_SPAN:
            span.set_status(_otel.api.trace.StatusCode.ERROR)
    span.end()


class CacheTelemetry:
    """The instruments one credential cache reports through. Event-loop only.

    ``now`` reads the cache's clock (seconds): durations are measured on it,
    as the cache's own deadlines and log durations are.
    """

    def __init__(
        self, tel: Telemetry, source: str, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self.tel, self.source, self._now = tel, source, now
        self.outcomes = {"rotated": 0, "same": 0, "failed": 0}
        self.last_duration_s: float | None = None

    def fetch_started(self, requested: str, entry: Any, now: float) -> tuple[Any, str, float]:
        """A fetch begins; ``entry`` is the serving set's record (None before the first)."""
        reason = refresh_reason(
            requested, entry is not None, getattr(entry, "mandatory_at", 0.0), now
        )
        span = _span(
            self.tel,
            P + "credential.fetch",
            {P + "credential.source": self.source, P + "refresh.reason": reason},
        )
        return span, reason, self._now()

    def fetch_ended(
        self,
        token: tuple[Any, str, float],
        rotated: bool,
        error: BaseException | None,
        *,
        closed: bool = False,
    ) -> None:
        """The fetch ended: a new set (``rotated``), the same keys again, or ``error``.

        ``closed``: the cache closed meanwhile and recorded nothing; counted as
        :meth:`fetch_cancelled` is.
        """
        if closed:
            self.fetch_cancelled(token)
            return
        span, reason, started = token
        duration = self._now() - started
        outcome = "failed" if error is not None else ("rotated" if rotated else "same")
        self.outcomes[outcome] += 1
        self.last_duration_s = duration
        attrs = {P + "credential.source": self.source, P + "outcome": outcome}
        i = self.tel.i
        i[P + "credential.refreshes"].add(1, {**attrs, P + "refresh.reason": reason})
        i[P + "credential.refresh.duration"].record(duration, attrs)
        kind = None if error is None else error_type(error)
        if kind is not None:
            i[P + "credential.refresh.failures"].add(
                1, {P + "credential.source": self.source, "error.type": kind}
            )
        _end(span, outcome, kind)

    def fetch_cancelled(self, token: tuple[Any, str, float]) -> None:
        """The cache closed while the fetch ran: end its span, count nothing."""
        _end(token[0], "cancelled")


class PoolTelemetry:
    """The instruments one client pool reports through, and its observable callbacks.

    ``view`` is the pool's :class:`~pool.client_pool.generations.GenerationBook`
    (read-only here: ``generations``, ``current``). Rotations run one at a
    time per pool, so the one under way is kept here. ``now`` reads the
    pool's clock (seconds): warm-up and drain durations are measured on it.
    """

    def __init__(
        self, tel: Telemetry, name: str, view: Any, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self.tel, self.name, self.book, self._now = tel, name, view, now
        self.attrs = {**DB, P + "pool.name": name}
        self.last_warmup_s: float | None = None
        self.last_drain_s: float | None = None
        self._rotation: Any = _otel.NULL_SPAN
        self._warmup: tuple[Any, float] | None = None
        self._warmup_outcome: str | None = None
        self._draining: dict[int, tuple[Any, float]] = {}

    def pool_name(self, number: int) -> str:
        """``db.client.connection.pool.name`` of generation ``number``: the pool's name and it."""
        return f"{self.name}#{number}"

    # -- rotation hooks (event loop) ---------------------------------------

    def rotation_started(self, source: str) -> None:
        """rotate_to() begins for a set from ``source``."""
        self._warmup_outcome = None
        attrs = {**self.attrs, P + "credential.source": source}
        self._rotation = _span(self.tel, P + "rotation", attrs)

    def warmup_started(self, gen: Any) -> None:
        """Generation ``gen`` was registered and starts connecting; its CMAP events count now."""
        conn_attrs = {**DB, "db.client.connection.pool.name": self.pool_name(gen.number)}
        i = self.tel.i
        gen.handle.monitor.sink = CmapSink(
            i["db.client.connection.create_time"],
            i["db.client.connection.wait_time"],
            conn_attrs,
            _max_pool_size(gen.handle.client),
        )
        self._rotation.set_attribute(P + "generation", gen.number)
        span = _span(
            self.tel, P + "warmup", {**self.attrs, P + "generation": gen.number}, self._rotation
        )
        self._warmup = (span, self._now())

    def warmup_ended(self, outcome: str) -> None:
        """The warm-up ended: ``full``, ``partial``, ``refused`` (code 18) or ``failed``."""
        if self._warmup is None:
            return
        (span, started), self._warmup = self._warmup, None
        duration = self._now() - started
        self.last_warmup_s = duration
        self._warmup_outcome = outcome
        self.tel.i[P + "warmup.duration"].record(duration, {**self.attrs, P + "outcome": outcome})
        _end(span, outcome, None if outcome in ("full", "partial") else outcome)

    def warmup_failed(self, exc: BaseException, refused: bool) -> None:
        """The warm-up raised ``exc``; ``refused`` when the server said code 18."""
        self.warmup_ended("refused" if refused else "cancelled" if _cancelled(exc) else "failed")

    def rotated(self, gen: Any, previous: Any) -> None:
        """``gen`` serves now; ``previous`` (if any) starts draining."""
        span = self._rotation
        if str(gen.state) == "closed":  # the pool closed while it warmed: never served
            self._count_rotation("cancelled")
            _end(span, "cancelled")
            self._rotation = _otel.NULL_SPAN
            return
        span.add_event("swap", {P + "generation": gen.number})
        self._count_rotation("swapped")
        if previous is not None:
            self._rotation.set_attribute(P + "previous_generation", previous.number)
            attrs = {**self.attrs, P + "generation": previous.number}
            drain = _span(self.tel, P + "drain", attrs, span)
            self._draining[previous.number] = (drain, self._now())
        _end(span, "swapped")
        self._rotation = _otel.NULL_SPAN

    def rotation_failed(self, exc: BaseException) -> None:
        """rotate_to() raised: the warm-up's outcome, or ``cancelled``/``failed``."""
        if self._warmup is not None:
            self.warmup_ended("cancelled" if _cancelled(exc) else "failed")
        outcome = self._warmup_outcome or ("cancelled" if _cancelled(exc) else "failed")
        if outcome in ("partial", "full"):
            outcome = "failed"
        self._count_rotation(outcome)
        _end(self._rotation, outcome, outcome)
        self._rotation = _otel.NULL_SPAN

    def _count_rotation(self, outcome: str) -> None:
        self.tel.i[P + "rotations"].add(1, {**self.attrs, P + "outcome": outcome})

    def leases_dropped(self, count: int) -> None:
        """``count`` leases were still open when their generation's drain deadline closed it."""
        self.tel.i[P + "lease.drops"].add(count, self.attrs)

    def run_retried(self) -> None:
        """``run()`` is calling its function again, on a newer client."""
        self.tel.i[P + "run.retries"].add(1, self.attrs)

    def closed(self) -> None:
        """The pool closed: its observable series end here."""
        self.tel.unregister(self)

    def generation_closed(self, gen: Any) -> None:
        """``gen``'s client was closed; ends its drain if it was replaced by a rotation."""
        drain = self._draining.pop(gen.number, None)
        if drain is None:
            return
        span, started = drain
        duration = self._now() - started
        self.last_drain_s = duration
        outcome = "dropped" if gen.dropped else "drained"
        self.tel.i[P + "drain.duration"].record(duration, {**self.attrs, P + "outcome": outcome})
        span.set_attribute(P + "dropped_leases", gen.dropped)
        _end(span, outcome)

    # -- observable callbacks (collection time, maybe the exporter's thread) --

    def _generations(self) -> list[Any]:
        return list(self.book.generations)  # a copy: the loop may change the list meanwhile

    def connection_counts(self) -> Observations:
        for gen in self._generations():
            opened, used, _ = _counts(gen.handle.monitor)
            name = self.pool_name(gen.number)
            for state, value in (("idle", max(0, opened - used)), ("used", used)):
                yield (
                    value,
                    {
                        **DB,
                        "db.client.connection.pool.name": name,
                        "db.client.connection.state": state,
                    },
                )

    def connection_max(self) -> Observations:
        for gen in self._generations():
            sink = getattr(gen.handle.monitor, "sink", None)
            if sink is not None:
                name = self.pool_name(gen.number)
                yield sink.max_size, {**DB, "db.client.connection.pool.name": name}

    def pending_requests(self) -> Observations:
        for gen in self._generations():
            name = self.pool_name(gen.number)
            yield _counts(gen.handle.monitor)[2], {**DB, "db.client.connection.pool.name": name}

    def time_to_expiry(self) -> Observations:
        current = self.book.current
        remaining = None if current is None else current.credentials.remaining()
        if remaining is not None:
            yield remaining, {**self.attrs, P + "generation": current.number}

    def lease_counts(self) -> Observations:
        held = {"active": 0, "draining": 0}
        for gen in self._generations():
            state = str(gen.state)
            if state in held:
                held[state] += gen.leases
        for state, value in held.items():
            yield value, {**self.attrs, P + "generation.state": state}


def _counts(monitor: Any) -> tuple[int, int, int]:
    """(open, in use, waiting for a check-out) from a pool's connection monitor."""
    snap = monitor.snapshot()
    return snap.open, snap.in_use, getattr(monitor, "waiting", 0)


def _cancelled(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)


def _max_pool_size(client: Any) -> int:
    """The client's maxPoolSize (both drivers: ``client.options.pool_options``)."""
    try:
        return int(client.options.pool_options.max_pool_size)
    except (AttributeError, TypeError, ValueError):
        return DEFAULT_MAX_POOL_SIZE
