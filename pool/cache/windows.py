"""Refresh-window and retry policy of :class:`pool.CredentialCache`, as pure functions.

Nothing here reads a clock or touches state: every function takes the numbers it
needs (seconds, a :class:`random.Random`) and returns seconds, so the policy is
tested by itself and the cache stays bookkeeping. The jittered exponential
backoff itself is :func:`pool._internal.backoff.backoff_delay`, shared with the
HTTP sources and the client rotation.

Two windows before a credential set's deadline (botocore's ``RefreshableCredentials``
design, sized the way AWS's newer SDKs size them):

* the **advisory** window: refreshes happen in here, in the background; a failure
  is logged and the current credentials are kept;
* the **mandatory** window: credentials this close to expiry are no longer handed
  out without first trying to refresh them; callers wait for the attempt.

AWS's newer design uses 5/15/60 minutes of advisory window for lifetimes of at
most 20 minutes / under 90 minutes / longer, and a mandatory window of
``min(1 minute, advisory)``. Lifetimes of a few seconds (tests, the demo) would
then be "always in the mandatory window", so below 15 minutes (STS's minimum
duration) the advisory window is a third of the lifetime, and the mandatory
window is at most a quarter of the advisory one.
For every lifetime of 15 minutes or more (STS's minimum) the caps change nothing
and the AWS figures hold.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pool._internal.backoff import backoff_delay

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_JITTER",
    "DEFAULT_SAME_CREDENTIALS_RETRY",
    "THROTTLED_BACKOFF_INITIAL",
    "Fleet",
    "Windows",
    "advisory_for",
    "backoff_cap",
    "fleet_retry_delay",
    "mandatory_for",
    "non_retryable_delay",
    "refresh_point",
    "retry_delay",
    "same_credentials_delay",
    "spread_refresh_point",
    "startup_delay",
    "throttled_delay",
    "windows_for",
]

#: Fraction of the span between the start of the advisory window and the start
#: of the mandatory window over which the scheduled refresh point is spread, so
#: a fleet that fetched together does not refresh together.
DEFAULT_JITTER = 0.5
#: First retry delay bound (seconds) after a failed fetch; doubles per failure.
DEFAULT_BACKOFF_INITIAL = 1.0
#: Largest retry delay (seconds) after failures; also capped by lifetime / 4.
DEFAULT_BACKOFF_MAX = 60.0
#: First retry delay bound (seconds) after the source handed back the very same
#: credentials (IMDS and ECS do so until a few minutes before expiry).
DEFAULT_SAME_CREDENTIALS_RETRY = 30.0
#: First retry delay bound (seconds) after a throttled answer (STS
#: ``Throttling``, HTTP 429): an endpoint that says "slow down" is not asked
#: again within a second, and never sooner than half the bound.
THROTTLED_BACKOFF_INITIAL = 5.0

_MINUTE = 60.0
_ADVISORY_TIERS = ((20 * _MINUTE, 5 * _MINUTE), (90 * _MINUTE, 15 * _MINUTE))
_ADVISORY_LONG = 60 * _MINUTE
_ADVISORY_FRACTION = 1 / 3
_SHORT_LIFETIME = 15 * _MINUTE
_MANDATORY_MAX = _MINUTE
_MANDATORY_FRACTION = 1 / 4


@dataclass(frozen=True, slots=True)
class Windows:
    """Both windows for one credential set, in seconds before its deadline."""

    advisory: float
    mandatory: float


def advisory_for(lifetime: float) -> float:
    """The advisory window (seconds) for credentials that live ``lifetime`` seconds."""
    if lifetime < _SHORT_LIFETIME:
        # Below STS's 15-minute minimum: a third of the lifetime (continuous with
        # the 5-minute tier at exactly 15 minutes).
        return max(0.0, lifetime * _ADVISORY_FRACTION)
    if lifetime <= _ADVISORY_TIERS[0][0]:
        return _ADVISORY_TIERS[0][1]
    if lifetime < _ADVISORY_TIERS[1][0]:
        return _ADVISORY_TIERS[1][1]
    return _ADVISORY_LONG


def mandatory_for(advisory: float) -> float:
    """The default mandatory window (seconds) inside an ``advisory`` window."""
    return min(_MANDATORY_MAX, advisory * _MANDATORY_FRACTION)


def windows_for(
    lifetime: float, advisory: float | None = None, mandatory: float | None = None
) -> Windows:
    """Both windows for a credential set; explicit values win over the sized ones.

    An explicit window is used as given, even when it is longer than the
    lifetime (the credentials are then refreshed, or rejected, at once); a
    mandatory window longer than the advisory one is cut to the advisory one.
    """
    adv = advisory_for(lifetime) if advisory is None else advisory
    man = mandatory_for(adv) if mandatory is None else mandatory
    return Windows(advisory=adv, mandatory=min(man, adv))


def refresh_point(deadline: float, windows: Windows, jitter: float, rng: random.Random) -> float:
    """When to refresh: a random point in the first ``jitter`` part of the advisory window.

    The point lies in ``[deadline - advisory, deadline - advisory + jitter * span]``
    where ``span`` is the time between the two windows' starts, so it always
    falls before the mandatory window.
    """
    start = deadline - windows.advisory
    span = max(0.0, windows.advisory - windows.mandatory)
    return start + rng.uniform(0.0, jitter * span)


def backoff_cap(backoff_max: float, lifetime: float | None) -> float:
    """The largest retry delay: ``backoff_max``, and at most a quarter of the lifetime.

    Short-lived credentials (seconds, in tests and the demo) must not wait
    minutes between attempts once the source is back.
    """
    if lifetime is None or not math.isfinite(lifetime):
        return backoff_max
    return max(0.0, min(backoff_max, lifetime / 4))


def non_retryable_delay(cap: float, rng: random.Random) -> float:
    """The delay after a non-retryable error: uniform in ``[cap / 2, cap]``.

    Such an error (access denied, invalid token) will not go away by asking
    again soon, so the source is not asked again before half the cap.
    """
    return rng.uniform(cap / 2, cap)


def same_credentials_delay(streak: int, retry: float, advisory: float, rng: random.Random) -> float:
    """The delay after the source returned the current credentials ``streak`` times in a row.

    Starts at ``retry`` (at most a tenth of the advisory window) and doubles,
    up to a twelfth of the advisory window (5 minutes for 6-hour instance
    credentials), so the rotation that IMDS and ECS make available at least
    five minutes before expiry is picked up before the mandatory window.
    """
    initial = min(retry, advisory / 10)
    cap = max(initial, advisory / 12)
    return backoff_delay(streak, initial, cap, rng)


def throttled_delay(attempt: int, backoff_initial: float, cap: float, rng: random.Random) -> float:
    """The delay after the ``attempt``-th failure in a row when the last one was throttled.

    Backs off longer than other retryable failures: the bound starts at
    :data:`THROTTLED_BACKOFF_INITIAL` (or ``backoff_initial`` if larger), doubles,
    stops at ``cap``, and the delay is at least half the bound ("equal jitter"),
    so a throttled fleet thins out instead of coming straight back.
    """
    initial = min(max(backoff_initial, THROTTLED_BACKOFF_INITIAL), cap)
    return backoff_delay(attempt, initial, cap, rng, floor=0.5)


@dataclass(frozen=True, slots=True)
class Fleet:
    """How one process of a fleet spreads its calls to a credential service it shares.

    All default to "off" (a single process sees no change):

    * ``startup_spread`` (seconds): the first fetch waits ``uniform(0, startup_spread)``,
      so a deploy that starts every process at once does not send every fetch
      at once (readiness is delayed by as much);
    * ``refresh_spread`` (seconds): each refresh point is spread over at least
      this long (instead of ``jitter`` of the advisory window), ending where it
      would end anyway;
    * ``stagger_first_refresh``: the first refresh point after the first fetch is
      uniform over the whole first lifetime, so processes that started together
      are desynchronised from their first refresh on, for good;
    * ``outage_tolerance`` (seconds): the latest refresh point is at least this
      long before the mandatory window, so a credential service down that long
      at the worst moment is ridden out on the current credentials;
    * ``retry_spread`` (seconds): while valid credentials are served outside
      the mandatory window, every retry after a failure (throttled or not)
      waits ``uniform(retry_spread / 2, 3 * retry_spread / 2)``, on average
      ``retry_spread``, from the first retry on (:func:`fleet_retry_delay`;
      at most a quarter of the lifetime, never past the mandatory window,
      never sooner than a lone process would retry), and so does a retry
      after a throttled first fetch. However many processes of the fleet are
      waiting, their retries then average at most
      ``processes / retry_spread`` calls/s, during an outage and in the
      catch-up after it, instead of each new failure making eight retries in
      its first four minutes (the exponential ramp from ``backoff_initial``).

    :meth:`for_budget` derives them from a fleet size and a calls-per-second budget.
    """

    startup_spread: float = 0.0
    refresh_spread: float = 0.0
    stagger_first_refresh: bool = False
    outage_tolerance: float = 0.0
    retry_spread: float = 0.0

    def __post_init__(self) -> None:
        for label in ("startup_spread", "refresh_spread", "outage_tolerance", "retry_spread"):
            value = getattr(self, label)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a finite number of seconds >= 0; got {value}")

    @classmethod
    def for_budget(
        cls, processes: int, calls_per_second: float, *, outage_tolerance: float = 900.0
    ) -> Fleet:
        """Settings that keep ``processes`` processes' fetches under ``calls_per_second``.

        Processes choose their moments independently, so the calls per second
        are Poisson around the mean: the spread is sized so that the mean plus
        four standard deviations fits the budget (``m + 4 sqrt(m) = budget``;
        for 10,000 processes and 50 calls/s, 350 s). The deploy's first
        fetches, every later refresh and the retries after an outage are
        spread over it (a retry waits that long on average, so even the whole
        fleet retrying at once fits); the first refresh is staggered over the
        first lifetime.
        """
        if processes < 1 or not calls_per_second > 0:
            raise ValueError("processes must be >= 1 and calls_per_second > 0")
        root = (-4 + math.sqrt(16 + 4 * calls_per_second)) / 2
        spread = processes / max(root * root, 1e-9)
        return cls(spread, spread, True, outage_tolerance, spread)


def fleet_retry_delay(spread: float, rng: random.Random) -> float:
    """A fleet process's pause before a retry: uniform in ``[spread / 2, 3 * spread / 2]``.

    On average ``spread``: ``N`` processes retrying this way, each at its own
    moment, call ``N / spread`` times a second together, whatever attempt
    each is at; that is what lets :meth:`Fleet.for_budget` bound the retries of
    the whole fleet (an exponential ramp from a second makes every new failure
    retry eight times in its first four minutes). Never sooner than half the
    spread, so a throttled answer is not asked again soon.
    """
    return rng.uniform(spread / 2, 1.5 * spread)


def retry_delay(
    attempt: int,
    rng: random.Random,
    *,
    throttled: bool,
    retryable: bool,
    backoff_initial: float,
    backoff_max: float,
    lifetime: float | None,
    fleet: Fleet | None = None,
    serving: bool = False,
    first: bool = False,
) -> float:
    """The pause after failure number ``attempt`` in a row: the cache's one retry rule.

    A lone process: a throttled answer backs off as :func:`throttled_delay`
    says, another retryable failure with full-jitter exponential backoff from
    ``backoff_initial`` to :func:`backoff_cap`, a non-retryable one as
    :func:`non_retryable_delay`. A process of a ``fleet`` with a
    ``retry_spread`` waits at least :func:`fleet_retry_delay` of the spread
    (capped by a quarter of the lifetime) from its first retry on while it is
    ``serving`` (valid credentials, outside the mandatory window), and after
    a throttled answer to its ``first`` fetch (not ready yet, its start
    already spread; STS throttling a fleet means the fleet is over the
    limit, and a sooner retry only takes another process's turn). Once
    credentials are expiring or expired the lone rule applies: callers of a
    live process wait.
    """
    cap = backoff_cap(backoff_max, lifetime)
    if throttled:
        delay = throttled_delay(attempt, backoff_initial, cap, rng)
    elif retryable:
        delay = backoff_delay(attempt, min(backoff_initial, cap), cap, rng)
    else:
        delay = non_retryable_delay(cap, rng)
    if (serving or (first and throttled)) and fleet is not None and fleet.retry_spread > 0:
        spread = backoff_cap(fleet.retry_spread, lifetime)
        delay = max(delay, fleet_retry_delay(spread, rng))
    return delay


def startup_delay(fleet: Fleet | None, rng: random.Random) -> float:
    """How long the first fetch waits: ``uniform(0, fleet.startup_spread)``, 0 without a fleet."""
    if fleet is None or fleet.startup_spread <= 0:
        return 0.0
    return rng.uniform(0.0, fleet.startup_spread)


def spread_refresh_point(
    now: float,
    deadline: float,
    windows: Windows,
    jitter: float,
    rng: random.Random,
    fleet: Fleet | None,
    *,
    first: bool,
) -> float:
    """:func:`refresh_point` for a process in a fleet (``now``: when the set arrived).

    Without ``fleet`` it is :func:`refresh_point`. Otherwise the window ends at
    ``refresh_point``'s latest point, moved to ``outage_tolerance`` before the
    mandatory window when that is earlier, and is ``max(jitter part,
    refresh_spread)`` wide; for the ``first`` set with ``stagger_first_refresh``
    it starts right after ``now``. Never earlier than half-way from ``now`` to
    that end (a tenth for the staggered first point), so a set is always used a while.
    """
    if fleet is None:
        return refresh_point(deadline, windows, jitter, rng)
    mandatory_at = deadline - windows.mandatory
    span = max(0.0, windows.advisory - windows.mandatory)
    latest = deadline - windows.advisory + jitter * span
    if fleet.outage_tolerance > 0:
        latest = min(latest, mandatory_at - fleet.outage_tolerance)
    # Credentials too short for the tolerance: at least half their useful life.
    latest = max(latest, now + (mandatory_at - now) / 2)
    if first and fleet.stagger_first_refresh:
        earliest = now + (latest - now) / 10
    else:
        width = max(jitter * span, fleet.refresh_spread)
        earliest = max(latest - width, now + (latest - now) / 2)
    return rng.uniform(min(earliest, latest), latest)
