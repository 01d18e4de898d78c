"""Fault injection shared by every stand-in (AWS endpoints and the MongoDB server).

A fault names a *target*: an endpoint (``imds``, ``ecs``, ``sts``, ``mongo``)
optionally narrowed to one operation (``sts:AssumeRoleWithWebIdentity``,
``mongo:saslContinue``, ``imds:token``). Kinds:

* ``latency=SECONDS``: answer normally, but that much later;
* ``error=STATUS``: an HTTP error status (5xx, 429); for ``mongo`` an error
  reply with that code;
* ``throttle``: STS ``Throttling`` (HTTP 400) / IMDS and ECS HTTP 429;
* ``hang``: never answer (until the connection is dropped by the client);
* ``drop``: close the connection without answering;
* ``stepdown`` (``mongo`` replica sets): elect a new primary now, then run
  the command (on the old primary a write then gets ``NotWritablePrimary``);
* ``down=SECONDS`` (``mongo`` replica sets): the member that received the
  command goes down (connections dropped, new ones refused) for that long.

A fault fires on every matching request, or only ``times`` times
(``xN`` suffix on the command line). Spec strings, for the CLI::

    ecs:latency=0.2   sts:AssumeRoleWithWebIdentity:error=503x2   mongo:saslContinue:drop
    mongo:insert:stepdownx1   mongo:find:down=5x1
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "FaultInjector", "FaultKind", "parse_fault"]

FaultKind = Literal["latency", "error", "throttle", "hang", "drop", "stepdown", "down"]
_KINDS = ("latency", "error", "throttle", "hang", "drop", "stepdown", "down")


@dataclass
class Fault:
    """One injected misbehaviour. ``times=None`` means every time."""

    target: str
    kind: FaultKind
    delay: float = 0.0
    status: int = 500
    times: int | None = None
    fired: int = field(default=0, compare=False)

    def matches(self, endpoint: str, operation: str | None) -> bool:
        if self.target in ("*", endpoint):
            return True
        return operation is not None and self.target == f"{endpoint}:{operation}"

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


_SPEC = re.compile(
    r"^(?P<target>[A-Za-z0-9_*]+(?::[A-Za-z0-9_]+)?):(?P<kind>latency|error|throttle|hang|drop|stepdown|down)"
    r"(?:=(?P<value>[0-9.]+))?(?:x(?P<times>[0-9]+))?$"
)


def parse_fault(spec: str) -> Fault:
    """Parse ``TARGET[:OPERATION]:KIND[=VALUE][xTIMES]`` into a :class:`Fault`.

    Raises ``ValueError`` naming the expected form when ``spec`` does not fit.
    """
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(
            f"bad fault {spec!r}: expected TARGET[:OPERATION]:KIND[=VALUE][xTIMES], "
            f"KIND one of {', '.join(_KINDS)}, e.g. 'ecs:latency=0.2' or 'sts:error=503x2'"
        )
    kind: FaultKind = m["kind"]  # type: ignore[assignment]
    value = m["value"]
    times = int(m["times"]) if m["times"] else None
    if kind in ("latency", "down"):
        if value is None:
            raise ValueError(f"bad fault {spec!r}: {kind} needs seconds, e.g. {kind}=0.2")
        return Fault(m["target"], kind, delay=float(value), times=times)
    if kind == "error":
        status = int(float(value)) if value else 500
        return Fault(m["target"], kind, status=status, times=times)
    return Fault(m["target"], kind, times=times)


class FaultInjector:
    """A thread-safe list of faults that stand-ins consult on each request.

    Thread-safe because tests drive stand-ins running in another thread.
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault | str) -> Fault:
        """Add a fault (or a spec string); returns it so it can be removed."""
        f = parse_fault(fault) if isinstance(fault, str) else fault
        with self._lock:
            self._faults.append(f)
        return f

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        """The faults that have not fired their ``times`` yet."""
        with self._lock:
            return list(self._faults)

    def take(self, endpoint: str, operation: str | None = None) -> list[Fault]:
        """The faults that fire for this request, counting each as fired.

        Latency faults come first so that a delay is applied before an error.
        """
        out: list[Fault] = []
        with self._lock:
            for f in self._faults:
                if f.matches(endpoint, operation) and not f.exhausted:
                    f.fired += 1
                    out.append(f)
            self._faults = [f for f in self._faults if not f.exhausted]
        out.sort(key=lambda f: f.kind != "latency")
        return out
