"""The fleet simulation's model: processes, one shared credential endpoint, four strategies.

Discrete events on one heap, one second per histogram bin. What a process
does when is decided by the library's own policy code, imported, never
re-implemented: :mod:`pool.cache.windows` (windows, refresh points, fleet
spread, same-credentials and throttled delays, startup delay) and
:func:`pool.cache.windows.retry_delay` (the cache's one retry rule, the
fleet's retry spread and the throttled backoff included). The bookkeeping
around them mirrors :class:`pool.cache.refresh.RefreshMachine` (what a fetch
outcome does).

Strategies:

* ``pool`` / ``pool_defaults`` / ``pool_no_jitter``: this library's cache
  (background refresh at a jittered point, backoff after failures, the
  throttled backoff, the fleet spread when configured). A rotation opens
  ``warm x members`` connections at once.
* ``botocore``: ``RefreshableCredentials``: 15/10-minute advisory/mandatory
  windows, no background refresh: the first use (ops are Poisson at
  ``ops_rate``) in the advisory window refreshes; a failed advisory refresh
  is retried at the next use; in the mandatory window a failed refresh raises
  to the caller (the op fails). Each refresh is one STS client call with
  botocore's legacy retries (5 attempts, ``random() * 2**(n-1)`` s apart),
  throttling and 5xx included. The app rebuilds its client on new credentials
  (``warm x members`` connections).
* ``pymongo_builtin``: PyMongo's own lookup (``pymongo_auth_aws.auth``
  1.3.0): consulted only when a *new connection* opens; credentials cached
  process-wide until 60 s before expiry; each miss is a new ``boto3.Session()``
  (a fetch, with botocore's retries); a failed fetch fails that connection's
  operation and clears the cache. Connections open at start (``warm x
  members``) and then at ``churn`` per process per second (Poisson).

Operations fail (``failed_operations``) while a process has no credentials
its strategy can use: ``pool``: ``ops_rate`` x time without valid
credentials (conservative: as if every op needed a new connection);
``botocore``: ``ops_rate`` x time in the mandatory window with the refresh
failing or expired; ``pymongo_builtin``: each new connection whose lookup
failed. Operations start once a process first has credentials
(``time_to_ready``). Connection churn of ``pool``/``botocore`` is added as a
steady rate to the server's authentications.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

import numpy as np

from pool.cache import windows as w
from pool.client_pool.options import DEFAULT_WARM_SPREAD

__all__ = ["ENVS", "STRATEGIES", "Config", "Env", "World"]

STRATEGIES = ("pool", "pool_defaults", "pool_no_jitter", "botocore", "pymongo_builtin")
_BOTO_ADVISORY, _BOTO_MANDATORY, _BOTO_ATTEMPTS = 15 * 60.0, 10 * 60.0, 5
_PYMONGO_BUFFER = 60.0


@dataclass(frozen=True)
class Env:
    """One AWS environment: credential lifetime and how its endpoint hands them out.

    ``fresh``: every call mints a new set living ``lifetime`` (STS). Otherwise an
    agent (ECS, Pod Identity, IMDS) serves one set until ``margin`` before its
    expiry, then the next; ``synced``: every process's agent minted at the deploy
    (a task's credentials), else at a random phase (an instance's).
    """

    name: str
    lifetime: float
    endpoint: str
    fresh: bool
    margin: float = 300.0
    synced: bool = True


ENVS = {
    "eks_irsa": Env("eks_irsa", 3600.0, "sts", True),
    "ecs": Env("ecs", 6 * 3600.0, "ecs", False),
    "eks_pod_identity": Env("eks_pod_identity", 6 * 3600.0, "eks_pod_identity", False),
    "ec2": Env("ec2", 6 * 3600.0, "imds", False, synced=False),
    "lambda": Env("lambda", 12 * 3600.0, "none", False),
}


@dataclass
class Config:
    processes: int = 10_000
    horizon: float = 86_400.0
    ops_rate: float = 1.0
    churn: float = 1 / 900
    warm: int = 4
    members: int = 3
    outage: tuple[float, float] | None = None
    throttle: tuple[float, float] | None = None  # rate, burst
    fleet: w.Fleet | None = None
    warm_spread: float = DEFAULT_WARM_SPREAD  # ClientPool(warm_spread=...): the library's default
    seed: int = 1
    extra: dict[str, float] = field(default_factory=dict)


class World:
    """One run: ``Config`` x ``Env`` x strategy; :meth:`run` returns the histograms."""

    def __init__(self, cfg: Config, env: Env, strategy: str) -> None:
        self.cfg, self.env, self.strategy = cfg, env, strategy
        self.rng = random.Random(cfg.seed)
        n, bins = cfg.processes, int(cfg.horizon) + 1
        self.calls = np.zeros(bins)
        self.throttled = np.zeros(bins)
        self.auths = np.zeros(bins)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.deadline = [-math.inf] * n
        self.key = [-1] * n
        self.mandatory_at = [-math.inf] * n
        self.refresh_at = [math.inf] * n
        self.windows: list[w.Windows] = [w.Windows(0.0, 0.0)] * n
        self.lifetime = [math.nan] * n
        self.consec = [0] * n
        self.streak = [0] * n
        self.sets = [0] * n
        self.ready = [math.nan] * n
        self.down_since: list[float | None] = [None] * n
        self.down_total = [0.0] * n
        self.failed_ops = [0.0] * n
        self.expired_served = [False] * n
        self.recovered_at: list[float | None] = [None] * n
        self.outage_failed = [False] * n  # a call failed in the outage; no new set yet
        self.caught_up_at: list[float | None] = [None] * n  # new set, s after the outage
        self.phase = [0.0 if env.synced else -self.rng.uniform(0, env.lifetime - env.margin)
                      for _ in range(n)]  # fmt: skip
        self.tokens = cfg.throttle[1] if cfg.throttle else 0.0
        self.token_t = 0.0
        self.events = 0

    # -- the shared endpoint -------------------------------------------------------

    def schedule(self, at: float, proc: int, kind: int) -> None:
        if at < self.cfg.horizon:
            self.seq += 1
            heapq.heappush(self.heap, (at, self.seq, proc, kind))

    def call(self, t: float, p: int) -> str:
        """Process ``p`` calls the endpoint at ``t``: ``ok``, ``error`` (outage), ``throttled``."""
        self.calls[int(t)] += 1
        out = self.cfg.outage
        if out is not None and out[0] <= t < out[1]:
            self.outage_failed[p] = True
            return "error"
        if self.cfg.throttle is not None:
            rate, burst = self.cfg.throttle
            self.tokens = min(burst, self.tokens + (t - self.token_t) * rate)
            self.token_t = t
            if self.tokens < 1:
                self.throttled[int(t)] += 1
                return "throttled"
            self.tokens -= 1
        return "ok"

    def creds_at(self, p: int, t: float) -> tuple[int, float]:
        """The (key, deadline) the endpoint hands process ``p`` at ``t``."""
        env = self.env
        if env.fresh:
            self.seq += 1
            return self.seq, t + env.lifetime
        period = env.lifetime - env.margin
        k = math.floor((t - self.phase[p]) / period)
        return k, self.phase[p] + k * period + env.lifetime

    # -- availability bookkeeping ----------------------------------------------------

    def got_creds(self, p: int, t: float, key: int, deadline: float, conns: int) -> None:
        out = self.cfg.outage
        if out is not None and t >= out[1] and self.recovered_at[p] is None:
            since = self.down_since[p]
            if self.deadline[p] <= out[1] or (since is not None and since <= out[1]):
                self.recovered_at[p] = t - out[1]  # it had nothing usable when STS came back
        if out is not None and t >= out[1] and self.outage_failed[p]:
            self.outage_failed[p] = False  # its refresh failed in the outage; caught up now
            self.caught_up_at[p] = t - out[1]
        paced = not math.isnan(self.ready[p])  # ClientPool paces rotations, not its first warm-up
        if math.isnan(self.ready[p]):
            self.ready[p], self.down_since[p] = t, None  # operations start now
        elif self.deadline[p] < t:  # a gap without valid credentials just ended
            since = self.down_since[p]
            self.close_down(
                p, self.deadline[p] if since is None else min(since, self.deadline[p]), t
            )
        elif self.down_since[p] is not None:
            self.close_down(p, self.down_since[p], t)
        self.key[p], self.deadline[p] = key, deadline
        self.add_conns(t, conns, paced=paced)

    def add_conns(self, t: float, conns: int, *, paced: bool = False) -> None:
        # ClientPool's warm_spread: a rotation's connections evenly over that many
        # seconds (one per member at a time); the other strategies rebuild a client
        # (or open a connection) at once.
        library = self.strategy.startswith("pool")
        spread = int(self.cfg.warm_spread) if paced and library else 0
        if conns <= 1 or spread <= 1:
            self.auths[int(t)] += conns
            return
        end = min(int(t) + spread, len(self.auths))
        self.auths[int(t) : end] += conns / spread

    def close_down(self, p: int, since: float, until: float) -> None:
        self.down_since[p] = None
        if until > since and not math.isnan(self.ready[p]):
            self.down_total[p] += until - since
            if self.strategy != "pymongo_builtin":
                self.failed_ops[p] += (until - since) * self.cfg.ops_rate

    def finish(self) -> None:
        end = self.cfg.horizon
        for p in range(self.cfg.processes):
            since = self.down_since[p]
            if self.deadline[p] < end and not math.isnan(self.ready[p]):
                since = self.deadline[p] if since is None else min(since, self.deadline[p])
            if since is not None:
                self.close_down(p, since, end)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> World:
        handler = {
            "pool": self.pool_attempt,
            "pool_defaults": self.pool_attempt,
            "pool_no_jitter": self.pool_attempt,
            "botocore": self.boto_attempt,
            "pymongo_builtin": self.pymongo_event,
        }[self.strategy]
        fleet = self.cfg.fleet if self.strategy == "pool" else None
        for p in range(self.cfg.processes):
            start = w.startup_delay(fleet, self.rng) if self.strategy == "pool" else 0.0
            self.schedule(start, p, 1)
        if self.env.endpoint == "none":
            self.static_run()
        else:
            while self.heap:
                t, _, p, kind = heapq.heappop(self.heap)
                self.events += 1
                handler(p, t, kind)
        self.finish()
        if self.strategy != "pymongo_builtin":
            self.auths += self.cfg.processes * self.cfg.churn
        return self

    def static_run(self) -> None:
        """Lambda: credentials in the variables, valid all along; no endpoint calls."""
        conns = self.cfg.warm * self.cfg.members
        for p in range(self.cfg.processes):
            self.got_creds(p, 0.0, 0, math.inf, conns)
        self.heap.clear()
        if self.strategy == "pymongo_builtin":
            self.auths += self.cfg.processes * self.cfg.churn

    # -- this library --------------------------------------------------------------------

    def pool_attempt(self, p: int, t: float, _kind: int) -> None:
        outcome = self.call(t, p)
        if outcome == "ok":
            key, deadline = self.creds_at(p, t)
            remaining = deadline - t
            win = w.windows_for(remaining)
            if remaining <= win.mandatory:
                outcome = "error"  # the cache refuses sets inside the mandatory window
            elif key == self.key[p] and not self.env.fresh:
                self.pool_same(p, t, self.windows[p])
                return
            else:
                self.pool_install(p, t, key, deadline, win)
                return
        self.pool_fail(p, t, throttled=outcome == "throttled")

    def pool_install(self, p: int, t: float, key: int, deadline: float, win: w.Windows) -> None:
        jitter = 0.0 if self.strategy == "pool_no_jitter" else w.DEFAULT_JITTER
        fleet = self.cfg.fleet if self.strategy == "pool" else None
        at = w.spread_refresh_point(
            t, deadline, win, jitter, self.rng, fleet, first=self.sets[p] == 0
        )
        self.sets[p] += 1
        self.consec[p] = self.streak[p] = 0
        self.lifetime[p] = deadline - t
        self.mandatory_at[p], self.refresh_at[p] = deadline - win.mandatory, at
        self.windows[p] = win  # the cache keeps the windows of the set it installed
        self.got_creds(p, t, key, deadline, self.cfg.warm * self.cfg.members)
        self.schedule(at, p, 1)

    def pool_same(self, p: int, t: float, win: w.Windows) -> None:
        self.streak[p] += 1
        self.consec[p] = 0
        at = t + w.same_credentials_delay(
            self.streak[p], w.DEFAULT_SAME_CREDENTIALS_RETRY, win.advisory, self.rng
        )
        if t < self.mandatory_at[p]:
            at = min(at, self.mandatory_at[p])
        self.schedule(at, p, 1)

    def pool_fail(self, p: int, t: float, *, throttled: bool) -> None:
        self.consec[p] += 1
        life = self.lifetime[p]
        delay = w.retry_delay(
            self.consec[p],
            self.rng,
            throttled=throttled,
            retryable=True,
            backoff_initial=w.DEFAULT_BACKOFF_INITIAL,
            backoff_max=w.DEFAULT_BACKOFF_MAX,
            lifetime=None if math.isnan(life) else life,
            fleet=self.cfg.fleet if self.strategy == "pool" else None,
            serving=t < self.mandatory_at[p],
            first=self.sets[p] == 0,
        )
        at = t + delay
        if t < self.deadline[p] and t < self.mandatory_at[p]:
            at = min(at, self.mandatory_at[p])  # one more try before callers must wait
        self.schedule(at, p, 1)

    # -- botocore's RefreshableCredentials ------------------------------------------------

    def next_use(self, t: float) -> float:
        return t + self.rng.expovariate(self.cfg.ops_rate)

    def boto_attempt(self, p: int, t: float, attempt: int) -> None:
        outcome = self.call(t, p)
        if outcome == "ok":
            key, deadline = self.creds_at(p, t)
            if key != self.key[p] or self.env.fresh:
                self.got_creds(p, t, key, deadline, self.cfg.warm * self.cfg.members)
            elif self.down_since[p] is not None and t < deadline:
                self.close_down(p, self.down_since[p], t)
            adv_start = self.deadline[p] - _BOTO_ADVISORY
            if not self.env.fresh and t >= adv_start:
                # Same keys inside the advisory window: every use refreshes again until
                # the agent rotates; those calls are added as their expected rate.
                avail = self.deadline[p] - self.env.margin
                if key == self.key[p] and t < avail:
                    self.calls[int(t) + 1 : int(avail) + 1] += self.cfg.ops_rate
                    self.schedule(avail + self.next_use(0.0), p, 1)
                    return
            self.schedule(max(self.next_use(t), adv_start + self.next_use(0.0)), p, 1)
            return
        out = self.cfg.outage
        if out is not None and out[0] <= t < out[1]:
            self.boto_outage(p, t, out[1])
            return
        if attempt < _BOTO_ATTEMPTS:  # botocore's legacy retry handler
            self.schedule(t + self.rng.random() * 2 ** (attempt - 1), p, attempt + 1)
            return
        ready = not math.isnan(self.ready[p])
        if ready and t >= self.deadline[p] - _BOTO_MANDATORY and self.down_since[p] is None:
            self.down_since[p] = t  # mandatory refresh failed: the caller gets the error
        self.schedule(self.next_use(t), p, 1)

    def boto_outage(self, p: int, t: float, end: float) -> None:
        """Every use retries a failing refresh (5 calls, ~7.5 s of retry pauses, next use).

        Until the outage ends those calls are added as their expected rate
        (5 per 8.5 s); ops fail from the mandatory window on.
        """
        cycle = 0.5 * sum(2**i for i in range(_BOTO_ATTEMPTS - 1)) + 1 / self.cfg.ops_rate
        self.calls[int(t) + 1 : int(end)] += _BOTO_ATTEMPTS / cycle
        mandatory = self.deadline[p] - _BOTO_MANDATORY
        if mandatory < end and self.down_since[p] is None and not math.isnan(self.ready[p]):
            self.down_since[p] = max(t, mandatory)
        self.schedule(end + self.rng.uniform(0, cycle), p, 1)

    # -- PyMongo's own lookup (pymongo_auth_aws) ----------------------------------------------

    def pymongo_event(self, p: int, t: float, kind: int) -> None:
        """kind 1: a new connection opens; kind >= 2: retry ``kind - 1`` of a lookup."""
        if kind == 1:
            if math.isnan(self.ready[p]):
                self.pymongo_fetch(p, t, 1, first=True)
                return
            self.schedule(t + self.rng.expovariate(self.cfg.churn), p, 1)
            if self.deadline[p] - t > _PYMONGO_BUFFER:
                self.auths[int(t)] += 1
                return
            self.pymongo_fetch(p, t, 1)
            return
        self.pymongo_fetch(p, t, kind - 1)

    def pymongo_fetch(self, p: int, t: float, attempt: int, *, first: bool = False) -> None:
        outcome = self.call(t, p)
        conns = self.cfg.warm * self.cfg.members if math.isnan(self.ready[p]) else 1
        if outcome == "ok":
            key, deadline = self.creds_at(p, t)
            self.got_creds(p, t, key, deadline, conns)
            if conns > 1:
                self.schedule(t + self.rng.expovariate(self.cfg.churn), p, 1)
            return
        if attempt < _BOTO_ATTEMPTS:
            self.schedule(t + self.rng.random() * 2 ** (attempt - 1), p, attempt + 2)
            return
        # The lookup failed: this connection's operation fails, the cache is cleared.
        self.deadline[p] = min(self.deadline[p], t)
        if math.isnan(self.ready[p]):
            self.schedule(self.next_use(t), p, 1)  # the app's next operation tries again
        else:
            self.failed_ops[p] += 1
            if self.down_since[p] is None:
                self.down_since[p] = t
