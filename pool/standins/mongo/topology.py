"""What a server says it is: standalone, replica-set member or ``mongos`` router.

A :class:`Role` contributes the topology fields of ``hello``, refuses the
commands a member in its state refuses (writes on a secondary get
``NotWritablePrimary`` 10107, reads without ``secondaryOk`` get
``NotPrimaryNoSecondaryOk`` 13435, as mongod answers them), and tells the
server how long an awaitable ``hello`` may wait.

:class:`ReplicaSetState` is shared by the members of one set (one process,
one event loop): who is primary, the election term (``electionId`` is
mongod's ``7fffffff`` + term), ``setVersion`` and each member's
``topologyVersion``. Every change bumps the counters and wakes every
awaitable ``hello``, so PyMongo's streaming monitor hears of an election at
once, as it does from mongod 4.4+.

Used on the servers' event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import Int64, ObjectId

from pool.standins.mongo.errors import CommandError

__all__ = [
    "HANDSHAKE_COMMANDS",
    "MemberRole",
    "ReplicaSetState",
    "Role",
    "RouterRole",
    "StandaloneRole",
    "is_write",
]

#: Commands that change data: refused on a secondary with 10107.
_WRITES = frozenset(
    {
        "insert",
        "update",
        "delete",
        "findAndModify",
        "create",
        "drop",
        "dropDatabase",
        "createIndexes",
        "dropIndexes",
        "renameCollection",
        "collMod",
        "commitTransaction",
        "abortTransaction",
    }
)
#: What mongod runs before authentication (the handshake and the SASL steps).
HANDSHAKE_COMMANDS = frozenset(
    {
        "hello",
        "isMaster",
        "ping",
        "buildInfo",
        "connectionStatus",
        "endSessions",
        "saslStart",
        "saslContinue",
    }
)
#: Commands any member answers whatever its state: the handshake's, cursors', the set's.
_ANY_STATE = HANDSHAKE_COMMANDS | {"getMore", "killCursors", "replSetGetStatus", "replSetStepDown"}


def is_write(name: str, body: Mapping[str, Any]) -> bool:
    """Whether mongod treats this command as a write (``$out``/``$merge`` included)."""
    if name in _WRITES:
        return True
    if name == "aggregate":
        stages = body.get("pipeline") or []
        return any(isinstance(s, dict) and ("$out" in s or "$merge" in s) for s in stages)
    return False


def _secondary_ok(body: Mapping[str, Any]) -> bool:
    pref = body.get("$readPreference")
    return isinstance(pref, dict) and pref.get("mode", "primary") != "primary"


class Role:
    """A standalone mongod: writable, no set, no awaitable hello. Base of the others."""

    #: Whether ``txnNumber`` (retryable writes, transactions) is accepted.
    sessions = False

    def hello_fields(self, legacy: bool) -> dict[str, Any]:
        return {"ismaster" if legacy else "isWritablePrimary": True}

    def check(self, name: str, body: Mapping[str, Any]) -> None:
        """Raise :class:`CommandError` when this server refuses ``name`` in its state."""

    def topology_version(self) -> dict[str, Any] | None:
        return None

    async def wait_for_change(self, client_version: Any, max_await: float) -> None:
        """Return when the topology changes or ``max_await`` seconds pass."""
        await asyncio.sleep(max_await)


class StandaloneRole(Role):
    """What :class:`~.server.MongoStandIn` is by default."""


@dataclass
class _Member:
    host: str
    process_id: ObjectId = field(default_factory=ObjectId)
    counter: int = 0
    down: bool = False


class ReplicaSetState:
    """The shared state of one replica set (see the module docstring)."""

    def __init__(self, set_name: str, hosts: list[str]) -> None:
        if not hosts:
            raise ValueError("a replica set needs at least one member")
        self.set_name = set_name
        self.members = [_Member(h) for h in hosts]
        self.primary: int | None = 0
        self.term = 1
        self.set_version = 1
        self._changed = asyncio.Event()

    @property
    def hosts(self) -> list[str]:
        return [m.host for m in self.members]

    @property
    def election_id(self) -> ObjectId:
        return ObjectId(f"7fffffff{self.term:016x}")

    def primary_host(self) -> str | None:
        return None if self.primary is None else self.members[self.primary].host

    def elect(self, new_primary: int | None = None) -> int:
        """Make ``new_primary`` (default: the next member that is up) primary; a new term."""
        if new_primary is None:
            start = 0 if self.primary is None else self.primary + 1
            candidates = [(start + i) % len(self.members) for i in range(len(self.members))]
            up = [i for i in candidates if not self.members[i].down and i != self.primary]
            if not up:
                raise ValueError("no member is up to become primary")
            new_primary = up[0]
        if not 0 <= new_primary < len(self.members) or self.members[new_primary].down:
            raise ValueError(f"member {new_primary} cannot become primary")
        self.primary = new_primary
        self.term += 1
        self.changed()
        return new_primary

    def set_down(self, index: int, down: bool) -> None:
        member = self.members[index]
        member.down = down
        if not down:
            # A restarted mongod is a new process: a new processId, counter 0.
            member.process_id, member.counter = ObjectId(), 0
        if down and self.primary == index:
            self.primary = None
            if any(not m.down for m in self.members):
                self.elect()
                return
        self.changed()

    def changed(self) -> None:
        """Bump every member's ``topologyVersion`` and wake every awaitable hello."""
        for member in self.members:
            member.counter += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, max_await: float) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), max_await)
        except TimeoutError:
            pass


class MemberRole(Role):
    """Member ``index`` of a :class:`ReplicaSetState`."""

    sessions = True

    def __init__(self, state: ReplicaSetState, index: int) -> None:
        self.state = state
        self.index = index

    @property
    def is_primary(self) -> bool:
        return self.state.primary == self.index

    def hello_fields(self, legacy: bool) -> dict[str, Any]:
        st = self.state
        fields: dict[str, Any] = {
            "topologyVersion": self.topology_version(),
            "hosts": st.hosts,
            "setName": st.set_name,
            "setVersion": st.set_version,
            "ismaster" if legacy else "isWritablePrimary": self.is_primary,
            "secondary": not self.is_primary,
            "me": st.members[self.index].host,
        }
        primary = st.primary_host()
        if primary is not None:
            fields["primary"] = primary
        if self.is_primary:
            fields["electionId"] = st.election_id
        return fields

    def topology_version(self) -> dict[str, Any]:
        member = self.state.members[self.index]
        return {"processId": member.process_id, "counter": Int64(member.counter)}

    def check(self, name: str, body: Mapping[str, Any]) -> None:
        if self.is_primary or name in _ANY_STATE:
            return
        in_txn = body.get("autocommit") is False
        if is_write(name, body) or in_txn:
            labels: tuple[str, ...] = ()
            if in_txn and name not in ("commitTransaction", "abortTransaction"):
                labels = ("TransientTransactionError",)
            elif "txnNumber" in body or name in ("commitTransaction", "abortTransaction"):
                labels = ("RetryableWriteError",)
            raise CommandError(10107, "not primary", labels=labels, extra=self._tv())
        if not _secondary_ok(body):
            raise CommandError(13435, "not primary and secondaryOk=false", extra=self._tv())

    def _tv(self) -> dict[str, Any]:
        return {"topologyVersion": self.topology_version()}

    async def wait_for_change(self, client_version: Any, max_await: float) -> None:
        if _differs(client_version, self.topology_version()):
            return  # the client is behind: answer at once
        await self.state.wait(max_await)


class RouterRole(Role):
    """A ``mongos`` router (``msg: "isdbgrid"``) over the shared storage."""

    sessions = True

    def __init__(self) -> None:
        self._process_id = ObjectId()

    def hello_fields(self, legacy: bool) -> dict[str, Any]:
        return {
            "ismaster" if legacy else "isWritablePrimary": True,
            "msg": "isdbgrid",
            "topologyVersion": self.topology_version(),
        }

    def topology_version(self) -> dict[str, Any]:
        return {"processId": self._process_id, "counter": Int64(0)}


def _differs(client: Any, current: dict[str, Any]) -> bool:
    if not isinstance(client, dict):
        return True
    return client.get("processId") != current["processId"] or int(client.get("counter", -1)) < int(
        current["counter"]
    )
