"""Atlas's topologies on loopback: a replica set, or a sharded cluster behind routers.

:class:`MongoCluster` runs several :class:`~.server.MongoStandIn` on one
event loop, each on its own port, sharing one storage, one session table
(:mod:`.sessions`), one credential authority and one user map. As a
replica set each is a member (:class:`~.topology.MemberRole`): ``hello``
says who is primary, writes on a secondary are refused with
``NotWritablePrimary`` and awaitable ``hello`` streams topology changes, so
PyMongo's and Motor's SDAM and retryable writes behave as on Atlas. As a
sharded cluster each is a ``mongos`` (``msg: "isdbgrid"``) over the same data.

Elections are driven by tests and faults: :meth:`MongoCluster.step_down`
(also the ``replSetStepDown`` command, and the ``stepdown`` fault),
:meth:`MongoCluster.member_down` (the ``down=SECONDS`` fault). Members are
advertised as ``HOST:PORT`` with HOST the listening address, or the names
given in ``hostnames`` (``m0.cluster0.pool.test``, for ``mongodb+srv``; see
:mod:`.dns` for how such names resolve to loopback).

Runs on one event loop; :meth:`MongoCluster.step_down` and friends must be
called on it (``ThreadedStandIns.call`` from another thread).
"""

from __future__ import annotations

import asyncio
import datetime
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import mongomock

from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority
from pool.standins.faults import FaultInjector
from pool.standins.mongo.commands import ConnectionState, MongoStats
from pool.standins.mongo.crud import Storage
from pool.standins.mongo.errors import CommandError
from pool.standins.mongo.server import MongoStandIn
from pool.standins.mongo.sessions import Sessions
from pool.standins.mongo.tls import TlsMaterial
from pool.standins.mongo.topology import MemberRole, ReplicaSetState, RouterRole
from pool.standins.mongo.wire import Request
from pool.standins.throttle import RateCounters

__all__ = ["MongoCluster"]

log = get_logger("pool.standins.mongo")


class MongoCluster(AsyncResource):
    """``members`` replica-set members, or with ``sharded`` that many routers.

    ``tls=True`` serves every listener over TLS with a CA made at start
    (:attr:`tls_ca_file`); ``hostnames`` are the names to advertise, one per
    server (default: the listening address). Other options
    (``require_auth``...) as for :class:`MongoStandIn`.
    Async context manager; ``aclose()`` is idempotent.
    """

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        members: int = 3,
        sharded: int = 0,
        set_name: str = "rs0",
        users: Mapping[str, str] | None = None,
        sts_host: str = "sts.amazonaws.com",
        faults: FaultInjector | None = None,
        command_delay: float = 0.0,
        tls: bool = False,
        hostnames: Sequence[str] | None = None,
        require_auth: bool = True,
    ) -> None:
        count = sharded or members
        if count < 1 or members < 1 or sharded < 0:
            raise ConfigurationError("a cluster needs at least one member or router")
        if hostnames is not None and len(hostnames) != count:
            raise ConfigurationError(f"hostnames needs {count} names, got {len(hostnames)}")
        self.set_name = None if sharded else set_name
        self.sharded = bool(sharded)
        self.faults = faults if faults is not None else FaultInjector()
        faults = self.faults
        self.storage = Storage()
        self.sessions = Sessions(self.storage)
        self.state = ReplicaSetState(set_name, [f"member{i}" for i in range(count)])
        self.tls_material = TlsMaterial(hostnames or ()) if tls else None
        self._hostnames = list(hostnames) if hostnames is not None else None
        shared_users = dict(users) if users is not None else {authority.default_role_arn: "app"}
        self.servers: list[MongoStandIn] = []
        for i in range(count):
            server = MongoStandIn(
                authority,
                users=shared_users,
                sts_host=sts_host,
                faults=faults,
                command_delay=command_delay,
                require_auth=require_auth,
                role=RouterRole() if sharded else MemberRole(self.state, i),
                storage=self.storage,
                sessions=self.sessions,
                commands={} if sharded else self._member_commands(i),
            )
            server.users = shared_users
            server.on_topology_fault = self._on_fault
            self.servers.append(server)
        self._timers: list[asyncio.TimerHandle] = []
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> MongoCluster:
        if not self._started:
            await self.start()
        return self

    async def start(self, host: str = "127.0.0.1", ports: Sequence[int] | None = None) -> str:
        """Listen on ``host`` (one port each; ``ports`` or any free); return :attr:`uri`."""
        if ports is not None and len(ports) != len(self.servers):
            raise ConfigurationError(f"ports needs {len(self.servers)} numbers")
        self._started = True
        ctx = self.tls_material.server_context() if self.tls_material else None
        try:
            for i, server in enumerate(self.servers):
                await server.start(host, ports[i] if ports else 0, tls=ctx)
                name = self._hostnames[i] if self._hostnames else server.host_port.rsplit(":", 1)[0]
                self.state.members[i].host = f"{name}:{server.address[1]}"
        except BaseException:
            await self.aclose()
            raise
        log.info("mongo.cluster_listening", uri=self.uri, sharded=self.sharded)
        return self.uri

    async def aclose(self) -> None:
        """Stop every server, forget the data. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        for server in self.servers:
            await server.aclose()
        self.sessions.close()
        self.storage.close()
        if self.tls_material is not None:
            self.tls_material.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_started", False) and not getattr(self, "_closed", True):
            _warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)

    def __repr__(self) -> str:
        kind = f"sharded x{len(self.servers)}" if self.sharded else f"{self.set_name}"
        return f"<MongoCluster {kind} {self.hosts if self._started else 'not started'}>"

    # -- what clients need ---------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        """The advertised ``HOST:PORT`` of every member (or router), in order."""
        return self.state.hosts

    @property
    def tls_ca_file(self) -> str | None:
        return self.tls_material.ca_file if self.tls_material else None

    @property
    def uri(self) -> str:
        """The URI a user would write: every host, ``replicaSet``, ``tls`` + ``tlsCAFile``."""
        return f"mongodb://{','.join(self.hosts)}/" + self.uri_options()

    def uri_options(self) -> str:
        """``?replicaSet=...&tls=true&tlsCAFile=...`` (what applies), or ``""``."""
        opts = []
        if self.set_name is not None:
            opts.append(f"replicaSet={self.set_name}")
        if self.tls_ca_file is not None:
            opts.append(f"tls=true&tlsCAFile={quote(self.tls_ca_file, safe='')}")
        return "?" + "&".join(opts) if opts else ""

    @property
    def users(self) -> dict[str, str]:
        return self.servers[0].users

    @property
    def stats_by_member(self) -> list[MongoStats]:
        """Each server's live counters, in :attr:`hosts` order."""
        return [s.stats for s in self.servers]

    @property
    def stats(self) -> MongoStats:
        """A sum over every server (a new object at each read)."""
        total = MongoStats()
        for s in self.stats_by_member:
            total.connections_opened += s.connections_opened
            total.connections_open += s.connections_open
            total.connections_peak += s.connections_peak
            total.authenticated_open += s.authenticated_open
            total.authenticated_peak += s.authenticated_peak
            total.auth_successes += s.auth_successes
            total.auth_failures.update(s.auth_failures)
            total.commands.update(s.commands)
            total.sts_calls += s.sts_calls
            total.protocol_errors += s.protocol_errors
            total.tls_failures += s.tls_failures
            total.tls_handshakes += s.tls_handshakes
            total.awaited_hellos += s.awaited_hellos
            total.faults_fired.update(s.faults_fired)
        total.rates = RateCounters.merged(s.rates for s in self.stats_by_member)
        return total

    @property
    def primary(self) -> int | None:
        """Index of the primary (None while there is none, or when sharded)."""
        return None if self.sharded else self.state.primary

    def reject_auth(self, reject: bool = True, *, except_keys: Sequence[str] = ()) -> None:
        for server in self.servers:
            server.reject_auth(reject, except_keys=except_keys)

    def drop_connections(self) -> int:
        return sum(s.drop_connections() for s in self.servers)

    @property
    def storage_client(self) -> mongomock.MongoClient[dict[str, Any]]:
        return self.storage.client

    # -- elections and outages -----------------------------------------------

    def step_down(self, new_primary: int | None = None) -> int:
        """Elect a new primary now (the next member up, or ``new_primary``); return it."""
        if self.sharded:
            raise ConfigurationError("a sharded cluster has no primary to step down")
        elected = self.state.elect(new_primary)
        self.sessions.abort_all()  # as mongod aborts open transactions on stepdown
        log.info("mongo.stepdown", primary=self.hosts[elected], term=self.state.term)
        return elected

    def member_down(self, index: int, seconds: float | None = None) -> None:
        """Member ``index`` goes down (connections dropped, new ones refused).

        A primary going down makes another member primary at once. With
        ``seconds`` it comes back by itself (as a secondary, a new process).
        """
        server = self.servers[index]
        server.refusing = True
        server.drop_connections()
        if not self.sharded:
            if self.state.primary == index:
                self.sessions.abort_all()
            self.state.set_down(index, True)
        log.info("mongo.member_down", member=self.hosts[index], seconds=seconds)
        if seconds is not None:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(seconds, self.member_up, index))

    def member_up(self, index: int) -> None:
        """Member ``index`` is back, as a secondary."""
        self.servers[index].refusing = False
        if not self.sharded:
            self.state.set_down(index, False)
            if self.state.primary is None:
                self.state.elect(index)
        log.info("mongo.member_up", member=self.hosts[index])

    def _on_fault(self, server: MongoStandIn, kind: str, seconds: float) -> None:
        if kind == "stepdown":
            self.step_down()
        else:
            self.member_down(self.servers.index(server), seconds)

    # -- replSet* commands -----------------------------------------------------

    def _member_commands(self, index: int) -> dict[str, Any]:
        def step_down(_conn: ConnectionState, _request: Request) -> dict[str, Any]:
            if self.state.primary != index:
                raise CommandError(10107, "not primary so can't step down")
            self.step_down()
            return {"ok": 1.0}

        def status(_conn: ConnectionState, _request: Request) -> dict[str, Any]:
            return self._status(index)

        return {"replSetStepDown": step_down, "replSetGetStatus": status}

    def _status(self, index: int) -> dict[str, Any]:
        members = []
        for i, member in enumerate(self.state.members):
            state = 8 if member.down else (1 if i == self.state.primary else 2)
            entry: dict[str, Any] = {
                "_id": i,
                "name": member.host,
                "health": 0.0 if member.down else 1.0,
                "state": state,
                "stateStr": {1: "PRIMARY", 2: "SECONDARY", 8: "(not reachable/healthy)"}[state],
            }
            if i == index:
                entry["self"] = True
            members.append(entry)
        return {
            "set": self.state.set_name,
            "date": datetime.datetime.now(datetime.UTC),
            "myState": 1 if self.state.primary == index else 2,
            "term": self.state.term,
            "members": members,
            "ok": 1.0,
        }
