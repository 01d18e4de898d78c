"""Command dispatch: handshake, MONGODB-AWS, the authentication gate, then storage.

:class:`Dispatcher` turns one decoded :class:`~.wire.Request` into one reply
document, synchronously (mongomock and SigV4 verification are CPU-light; no
I/O happens here). Latency, faults and the socket live in :mod:`.server`.

The server presents itself as a MongoDB 7.0 server (wire version 21). What
kind is its :class:`~.topology.Role`'s business: by default a standalone,
where sessions work (``lsid``, ``$clusterTime``, ``$readPreference`` are
accepted and ignored) but, like a standalone mongod, any command carrying
``txnNumber`` is refused with code 20 (drivers use neither retryable writes
nor transactions on a standalone). A replica-set member or a router accepts
them and hands them to the deployment's :class:`~.sessions.Sessions`. The
role also refuses what a secondary refuses and adds the topology fields to
``hello``. ``compression`` is never advertised.

Not thread-safe: used from the server's event loop only. ``users`` may be
replaced or mutated from another thread between commands (single dict reads).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo.errors import OperationFailure

from pool._internal.log import get_logger
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo import catalog, crud
from pool.standins.mongo.auth import MECHANISM, AuthFailure, AwsConversation
from pool.standins.mongo.errors import CommandError, error_reply
from pool.standins.mongo.sessions import Sessions
from pool.standins.mongo.topology import HANDSHAKE_COMMANDS, Role, StandaloneRole
from pool.standins.mongo.wire import MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE, Request
from pool.standins.throttle import RateCounters

__all__ = ["ConnectionState", "Dispatcher", "MongoStats"]

log = get_logger("pool.standins.mongo")

MAX_WIRE_VERSION = 21  # MongoDB 7.0; PyMongo 4.20 needs >= 9
MAX_WRITE_BATCH_SIZE = 100_000
_ALIASES = {"ismaster": "isMaster", "findandmodify": "findAndModify", "buildinfo": "buildInfo"}
#: What mongod runs before authentication (the handshake and the SASL steps).
_UNAUTHENTICATED_OK = HANDSHAKE_COMMANDS
_TRANSACTION_COMMANDS = frozenset({"commitTransaction", "abortTransaction"})
#: A command a deployment adds (``replSetStepDown``...): (connection, request) -> reply.
AdminCommand = Callable[["ConnectionState", Request], dict[str, Any]]
_AUTH_FAILED = error_reply(18, "Authentication failed.")


@dataclass
class MongoStats:
    """Counters for tests and benchmarks. Updated on the server's loop; read from anywhere.

    ``auth_failures`` is keyed by reason (``sts:ExpiredToken``, ``unmapped_role``,
    ``bad_payload``, ``rejected``...), ``commands`` by canonical command name.
    ``sts_calls`` counts GetCallerIdentity verifications (Atlas's STS quota).
    ``rates`` counts per wall-clock second ``connections`` opened, ``saslStart``
    received and ``auth`` (successful authentications), for the fleet benchmarks.
    """

    connections_opened: int = 0
    connections_open: int = 0
    #: The most connections open at once since start (or since a test reset it).
    connections_peak: int = 0
    #: Authenticated connections open now, and the most at once: the application's
    #: connections, without the drivers' monitoring ones (which never authenticate).
    authenticated_open: int = 0
    authenticated_peak: int = 0
    auth_successes: int = 0
    auth_failures: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    sts_calls: int = 0
    protocol_errors: int = 0
    tls_failures: int = 0
    #: Connections whose TLS handshake completed (0 on a plaintext listener).
    tls_handshakes: int = 0
    #: Awaitable hellos received (each opens a stream: PyMongo's streaming monitor).
    awaited_hellos: int = 0
    faults_fired: Counter[str] = field(default_factory=Counter)
    rates: RateCounters = field(default_factory=RateCounters)

    def snapshot(self) -> dict[str, Any]:
        """A plain copy, safe to keep while the server goes on counting."""
        return {
            "connections_opened": self.connections_opened,
            "connections_open": self.connections_open,
            "connections_peak": self.connections_peak,
            "authenticated_open": self.authenticated_open,
            "authenticated_peak": self.authenticated_peak,
            "auth_successes": self.auth_successes,
            "auth_failures": dict(self.auth_failures),
            "commands": dict(self.commands),
            "sts_calls": self.sts_calls,
            "protocol_errors": self.protocol_errors,
            "tls_failures": self.tls_failures,
            "tls_handshakes": self.tls_handshakes,
            "awaited_hellos": self.awaited_hellos,
            "faults_fired": dict(self.faults_fired),
            "per_second": self.rates.snapshot(),
        }


@dataclass
class ConnectionState:
    """What the server knows about one client connection."""

    id: int
    peer: str
    user: str | None = None
    handshake_done: bool = False
    conversation: AwsConversation | None = None


def canonical_name(request: Request) -> str:
    name = request.command_name
    return _ALIASES.get(name, name)


class Dispatcher:
    """Runs commands for one server (see the module docstring)."""

    def __init__(
        self,
        *,
        authority: CredentialAuthority,
        users: dict[str, str],
        sts_host: str,
        storage: crud.Storage,
        stats: MongoStats,
        require_auth: bool,
        role: Role | None = None,
        sessions: Sessions | None = None,
        commands: Mapping[str, AdminCommand] | None = None,
    ) -> None:
        self.authority = authority
        self.role = role if role is not None else StandaloneRole()
        self.sessions = sessions
        self.users = users
        self.sts_host = sts_host
        self.storage = storage
        self.stats = stats
        self.require_auth = require_auth
        self.reject_auth = False
        self.reject_except: frozenset[str] = frozenset()
        self._admin: dict[str, Callable[[ConnectionState, Request], dict[str, Any]]] = {
            "hello": self._hello,
            "isMaster": self._hello,
            "ping": lambda _c, _r: {"ok": 1.0},
            "buildInfo": lambda _c, _r: _BUILD_INFO,
            "endSessions": lambda _c, _r: {"ok": 1.0},
            "connectionStatus": self._connection_status,
            "saslStart": self._sasl_start,
            "saslContinue": self._sasl_continue,
            **(commands or {}),
        }
        self._storage_handlers = crud.HANDLERS | catalog.HANDLERS

    def run(self, conn: ConnectionState, request: Request) -> dict[str, Any]:
        """The reply to ``request``; never raises for a bad command."""
        name = canonical_name(request)
        if request.db is None:
            if request.legacy:
                return error_reply(352, "OP_QUERY is only supported on <db>.$cmd for hello")
            return error_reply(40571, "OP_MSG requests require a $db argument")
        if request.legacy and name not in ("hello", "isMaster"):
            return error_reply(
                352,
                f"Unsupported OP_QUERY command: {name}. The client driver may require an upgrade.",
            )
        self.stats.commands[name] += 1
        if self.require_auth and conn.user is None and name not in _UNAUTHENTICATED_OK:
            return error_reply(13, f"command {name} requires authentication")
        body = request.body
        sessions = None
        if "txnNumber" in body or name in _TRANSACTION_COMMANDS or body.get("autocommit") is False:
            if self.sessions is None or not self.role.sessions:
                # What a standalone mongod answers; mongomock could not roll back anyway.
                return error_reply(
                    20, "Transaction numbers are only allowed on a replica set member or mongos"
                )
            sessions = self.sessions

        def execute(storage: crud.Storage) -> dict[str, Any]:
            return self._guarded(conn, name, lambda: self._invoke(conn, request, name, storage))

        return self._guarded(conn, name, lambda: self._checked(name, body, sessions, execute))

    def _checked(
        self,
        name: str,
        body: Mapping[str, Any],
        sessions: Sessions | None,
        execute: Callable[[crud.Storage], dict[str, Any]],
    ) -> dict[str, Any]:
        self.role.check(name, body)
        if sessions is not None:
            return sessions.run(name, body, execute)
        return execute(self.storage)

    def _guarded(
        self, conn: ConnectionState, name: str, call: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """``call()``, with every failure turned into mongod's error reply."""
        try:
            return call()
        except CommandError as exc:
            return exc.reply()
        except OperationFailure as exc:  # mongomock reports with PyMongo's errors
            return error_reply(exc.code or 2, str(exc))
        except NotImplementedError as exc:
            return error_reply(115, f"not supported by the stand-in's storage: {exc}")
        except (ValueError, TypeError, KeyError) as exc:
            return error_reply(2, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug here must not take the server down
            log.exception("mongo.command_crashed", command=name, conn=conn.id)
            return error_reply(1, f"internal error in the stand-in: {type(exc).__name__}")

    def _invoke(
        self, conn: ConnectionState, request: Request, name: str, storage: crud.Storage
    ) -> dict[str, Any]:
        admin = self._admin.get(name)
        if admin is not None:
            return admin(conn, request)
        handler = self._storage_handlers.get(name)
        if handler is None:
            raise CommandError(59, f"no such command: '{name}'")
        assert request.db is not None
        return handler(storage, crud.Invocation(name, request.db, request.body, conn.user))

    # -- handshake -------------------------------------------------------

    def _hello(self, conn: ConnectionState, request: Request) -> dict[str, Any]:
        body = request.body
        if "client" in body and conn.handshake_done:
            raise CommandError(
                186, "The client metadata document may only be sent in the first hello"
            )
        conn.handshake_done = True
        reply: dict[str, Any] = {
            **self.role.hello_fields(legacy=canonical_name(request) != "hello"),
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
            "localTime": datetime.datetime.now(datetime.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn.id,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }
        if body.get("helloOk"):
            reply["helloOk"] = True  # drivers then switch to "hello" on this connection
        asked = body.get("saslSupportedMechs")
        if isinstance(asked, str) and asked.startswith("$external."):
            reply["saslSupportedMechs"] = [MECHANISM]
        return reply

    def _connection_status(self, conn: ConnectionState, _request: Request) -> dict[str, Any]:
        users = [{"user": conn.user, "db": "$external"}] if conn.user else []
        roles = [{"role": "readWriteAnyDatabase", "db": "admin"}] if conn.user else []
        return {
            "authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": roles},
            "ok": 1.0,
        }

    # -- MONGODB-AWS -----------------------------------------------------

    def _sasl_start(self, conn: ConnectionState, request: Request) -> dict[str, Any]:
        conn.conversation = None
        self.stats.rates.record("saslStart")
        mechanism = request.body.get("mechanism")
        if mechanism != MECHANISM:
            self._auth_failed(conn, "mechanism", f"mechanism {str(mechanism)[:40]!r}")
            return error_reply(
                334,
                f"Received authentication for mechanism {str(mechanism)[:40]} which is not enabled",
            )
        if request.db != "$external":
            return self._auth_failed(conn, "wrong_db", f"saslStart on {request.db!r}")
        conversation = AwsConversation(self.sts_host)
        try:
            challenge = conversation.start(request.body.get("payload"))
        except AuthFailure as exc:
            return self._auth_failed(conn, exc.reason, exc.detail)
        conn.conversation = conversation
        return {"conversationId": 1, "done": False, "payload": bson.Binary(challenge), "ok": 1.0}

    def _sasl_continue(self, conn: ConnectionState, request: Request) -> dict[str, Any]:
        conversation, conn.conversation = conn.conversation, None
        if conversation is None or request.body.get("conversationId") != 1:
            return self._auth_failed(conn, "no_conversation", "saslContinue out of sequence")
        if self.reject_auth and not self.reject_except:
            return self._auth_failed(conn, "rejected", "reject_auth is set")
        try:
            principal = conversation.finish(request.body.get("payload"), self.authority, self.users)
        except AuthFailure as exc:
            return self._auth_failed(conn, exc.reason, exc.detail)
        finally:
            self.stats.sts_calls += conversation.sts_called
        if self.reject_auth and principal.access_key_id not in self.reject_except:
            return self._auth_failed(conn, "rejected", f"reject_auth is set ({principal.key_hint})")
        if conn.user is None:
            self.stats.authenticated_open += 1
            self.stats.authenticated_peak = max(
                self.stats.authenticated_peak, self.stats.authenticated_open
            )
        conn.user = principal.user
        self.stats.auth_successes += 1
        self.stats.rates.record("auth")
        log.info(
            "mongo.auth_succeeded",
            conn=conn.id,
            user=principal.user,
            arn=principal.arn,
            key=principal.key_hint,
        )
        return {"conversationId": 1, "done": True, "payload": b"", "ok": 1.0}

    def _auth_failed(self, conn: ConnectionState, reason: str, detail: str) -> dict[str, Any]:
        self.stats.auth_failures[reason] += 1
        log.warning("mongo.auth_failed", conn=conn.id, peer=conn.peer, reason=reason, detail=detail)
        return dict(_AUTH_FAILED)


_BUILD_INFO: dict[str, Any] = {
    "version": "7.0.0",
    "gitVersion": "standin",
    "versionArray": [7, 0, 0, 0],
    "bits": 64,
    "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
    "storageEngines": ["mongomock"],
    "ok": 1.0,
}
