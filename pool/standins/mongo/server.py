"""``MongoStandIn``: an asyncio TCP server that drivers take for an Atlas cluster.

Each accepted connection gets one task that reads frames, applies injected
faults and ``command_delay``, runs the command (:mod:`.commands`) and writes
the reply. Frames that cannot be decoded close that connection only; the
server and other connections carry on. Storage and cursors belong to the
server, so they outlive connections and die with the server.

Runs on one event loop. Everything except :attr:`stats` reads, :attr:`users`
edits and :meth:`reject_auth` must be called on that loop; those three are
plain attribute accesses and may come from another thread (a test driving a
synchronous ``MongoClient`` through ``anyio.to_thread``, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import ssl
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import mongomock

from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool.errors import ConfigurationError, PoolClosedError
from pool.standins.authority import CredentialAuthority
from pool.standins.faults import FaultInjector
from pool.standins.mongo.auth import validate_sts_host
from pool.standins.mongo.commands import (
    AdminCommand,
    ConnectionState,
    Dispatcher,
    MongoStats,
    canonical_name,
)
from pool.standins.mongo.crud import Storage
from pool.standins.mongo.errors import error_reply
from pool.standins.mongo.limits import (
    LimitStats,
    MongoLimits,
    read_limited_frame,
    refuse_unauthenticated,
)
from pool.standins.mongo.sessions import Sessions
from pool.standins.mongo.tls import TlsFirstProtocol, start_tls_first_server
from pool.standins.mongo.topology import Role
from pool.standins.mongo.wire import (
    MAX_MESSAGE_SIZE,
    Request,
    WireProtocolError,
    encode_reply,
    parse_request,
)

__all__ = ["MongoStandIn"]

log = get_logger("pool.standins.mongo")


class MongoStandIn(AsyncResource):
    """An Atlas-like MongoDB server on loopback with MONGODB-AWS authentication.

    ``users`` maps IAM role ARNs (``arn:aws:iam::<acct>:role/<name>``; IAM user
    ARNs for long-term keys) to database user names; by default the
    authority's default role maps to ``"app"``. ``sts_host`` is the host the
    server tells clients to sign for (its second label is the region).
    ``faults`` is consulted for endpoint ``mongo`` and operation = command
    name. ``command_delay`` seconds are added before every command,
    handshake and authentication included, like network latency to Atlas.
    With ``require_auth=False`` every command runs unauthenticated.

    The members of a replica set or the routers of a sharded cluster
    (:mod:`.cluster`) are MongoStandIns sharing ``storage`` and ``sessions``
    and each given a ``role`` (:mod:`.topology`); ``commands`` adds
    deployment commands (``replSetStepDown``...). Alone, a server owns its
    storage and is a standalone.
    :attr:`stats` (:class:`~.commands.MongoStats`) counts connections,
    authentications (failures by reason), STS calls and commands by name.

    Use as ``async with MongoStandIn(authority) as server: server.uri``.
    """

    def __init__(
        self,
        authority: CredentialAuthority,
        *,
        users: Mapping[str, str] | None = None,
        sts_host: str = "sts.amazonaws.com",
        faults: FaultInjector | None = None,
        require_auth: bool = True,
        command_delay: float = 0.0,
        max_message_size: int = MAX_MESSAGE_SIZE,
        role: Role | None = None,
        storage: Storage | None = None,
        sessions: Sessions | None = None,
        commands: Mapping[str, AdminCommand] | None = None,
        limits: MongoLimits | None = None,
    ) -> None:
        if command_delay < 0:
            raise ConfigurationError(f"command_delay must be >= 0 seconds, got {command_delay}")
        if not 1024 <= max_message_size <= MAX_MESSAGE_SIZE:
            raise ConfigurationError(f"max_message_size must be 1024..{MAX_MESSAGE_SIZE}")
        self.authority = authority
        self.faults = faults if faults is not None else FaultInjector()
        self.command_delay = command_delay
        self.max_message_size = max_message_size
        self.limits = limits or MongoLimits(
            max_message_size=max_message_size,
            max_unauthenticated_message_size=min(64 * 1024, max_message_size),
        )
        self.limit_stats = LimitStats()
        self.stats = MongoStats()
        self._owns_storage = storage is None
        self._storage = storage if storage is not None else Storage()
        self._dispatcher = Dispatcher(
            authority=authority,
            users=dict(users) if users is not None else {authority.default_role_arn: "app"},
            sts_host=validate_sts_host(sts_host),
            storage=self._storage,
            stats=self.stats,
            require_auth=require_auth,
            role=role,
            sessions=sessions,
            commands=commands,
        )
        self.role = self._dispatcher.role
        #: While set, new connections are aborted at once (a member that is down).
        self.refusing = False
        #: Set by a cluster: applies ``stepdown``/``down`` faults (server, kind, seconds).
        self.on_topology_fault: Callable[[MongoStandIn, str, float], None] | None = None
        self.tls = False
        self._tls_context: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[int, tuple[asyncio.StreamWriter, asyncio.Task[Any]]] = {}
        self._conn_ids = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._address: tuple[str, int] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> MongoStandIn:
        if self._server is None:
            await self.start()
        return self

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> str:
        """Listen on ``host:port`` (0: any free port); return :attr:`uri`.

        With ``tls`` (a server-side context, :mod:`.tls`) every connection is TLS.
        """
        if self._closed:
            raise PoolClosedError("this MongoStandIn is closed; create a new one")
        if self._server is not None:
            raise ConfigurationError(f"MongoStandIn already listening at {self.uri}")
        self.tls = tls is not None
        self._tls_context = tls
        # TLS is started per connection in _serve, so that a failed handshake
        # is counted and closes that connection quietly (asyncio's own
        # ssl= path logs it as a loop error).
        if tls is None:
            self._server = await asyncio.start_server(self._serve, host, port)
        else:
            self._server = await start_tls_first_server(self._serve, host, port)
        sockname = self._server.sockets[0].getsockname()
        self._address = (sockname[0], sockname[1])
        log.info("mongo.listening", uri=self.uri)
        return self.uri

    async def aclose(self) -> None:
        """Stop listening, close every connection, forget cursors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = []
        for writer, task in list(self._connections.values()):
            writer.transport.abort()
            task.cancel()
            tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._owns_storage:
            self._storage.close()
        log.info("mongo.closed", connections_opened=self.stats.connections_opened)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_server", None) is not None and not self._closed:
            _warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self.uri if self._address else "not started")
        return f"<MongoStandIn {state}>"

    # -- public state --------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on; ``ConfigurationError`` before :meth:`start`."""
        if self._address is None:
            raise ConfigurationError("MongoStandIn not started: await start() first")
        return self._address

    @property
    def uri(self) -> str:
        """``mongodb://HOST:PORT/``, without credentials (``?tls=true`` when TLS)."""
        return f"mongodb://{self.host_port}/" + ("?tls=true" if self.tls else "")

    @property
    def host_port(self) -> str:
        """``HOST:PORT`` as it appears in a URI or in ``hello``'s ``hosts``."""
        host, port = self.address
        return f"{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def users(self) -> dict[str, str]:
        """The live IAM ARN -> database user map; edit it to (un)map roles."""
        return self._dispatcher.users

    @users.setter
    def users(self, users: dict[str, str]) -> None:
        """Replace the map by ``users`` itself (not a copy): a cluster's servers share one."""
        self._dispatcher.users = users

    @property
    def storage(self) -> mongomock.MongoClient[dict[str, Any]]:
        """The mongomock client holding the data (seed or inspect it on the server's loop)."""
        return self._storage.client

    @property
    def open_cursors(self) -> int:
        return len(self._storage.cursors)

    def reject_auth(self, reject: bool = True, *, except_keys: Iterable[str] = ()) -> None:
        """While set, ``saslContinue`` fails with code 18 (reason ``rejected``).

        With ``except_keys``, the listed access key ids still authenticate: the
        server refuses only *other* credentials (new ones, say), as when a
        rotated role is not mapped yet.
        """
        self._dispatcher.reject_except = frozenset(except_keys) if reject else frozenset()
        self._dispatcher.reject_auth = reject

    def drop_connections(self) -> int:
        """Abort every open client connection (a network blip); return how many."""
        writers = [w for w, _ in self._connections.values()]
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    # -- per connection -------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closed or self.refusing or task is None:
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.limits.max_connections:
            self.limit_stats.connections_refused += 1
            log.warning(
                "mongo.connection_refused", peer=str(peer), limit=self.limits.max_connections
            )
            writer.transport.abort()
            return
        conn = ConnectionState(next(self._conn_ids), f"{peer[0]}:{peer[1]}" if peer else "?")
        self._connections[conn.id] = (writer, task)
        self.stats.connections_opened += 1
        self.stats.rates.record("connections")
        self.stats.connections_open += 1
        self.stats.connections_peak = max(self.stats.connections_peak, self.stats.connections_open)
        try:
            if self._tls_context is not None and not await self._start_tls(writer):
                return
            await self._serve_connection(conn, reader, writer)
        except WireProtocolError as exc:
            self.stats.protocol_errors += 1
            log.info("mongo.protocol_error", conn=conn.id, peer=conn.peer, error=str(exc))
        except TimeoutError:
            self.limit_stats.idle_closed += 1
            log.info("mongo.idle_unauthenticated_closed", conn=conn.id, peer=conn.peer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the server is closing
        except Exception:
            log.exception("mongo.connection_crashed", conn=conn.id)
        finally:
            self._connections.pop(conn.id, None)
            self.stats.connections_open -= 1
            if conn.user is not None:
                self.stats.authenticated_open -= 1
            writer.close()

    async def _start_tls(self, writer: asyncio.StreamWriter) -> bool:
        """The server side of the TLS handshake; False (counted, logged) when it fails."""
        assert self._tls_context is not None
        plain = writer.transport
        try:
            protocol = plain.get_protocol()
            if isinstance(protocol, TlsFirstProtocol):  # always, from start_tls_first_server
                await protocol.start_tls(writer, self._tls_context, 10.0)
            else:
                await writer.start_tls(self._tls_context, ssl_handshake_timeout=10.0)
            failure: str | None = None if writer.transport is not None else "ConnectionLost"
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            failure = type(exc).__name__
        except AttributeError:
            # CPython 3.11's StreamWriter.start_tls when the peer leaves mid-handshake:
            # loop.start_tls() returns None, the writer's transport becomes None and
            # protocol._replace_writer() fails on it.
            failure = "ConnectionLost"
        if failure is None:
            self.stats.tls_handshakes += 1
            return True
        restore_transport(writer, plain)
        self.stats.tls_failures += 1
        log.info("mongo.tls_handshake_failed", error=failure)
        plain.abort()
        return False

    async def _serve_connection(
        self, conn: ConnectionState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            authenticated = conn.user is not None or not self._dispatcher.require_auth
            frame = await read_limited_frame(reader, self.limits, authenticated=authenticated)
            if frame is None:
                return
            refused = None if authenticated else refuse_unauthenticated(*frame)
            if refused is not None:  # answered without decoding the body
                self.limit_stats.unauthenticated_refused += 1
                writer.write(self._encode(*refused))
                await writer.drain()
                continue
            request = parse_request(*frame)
            reply = await self._apply_faults(request, reader)
            if isinstance(reply, str):
                return  # "drop"
            if self.command_delay:
                await asyncio.sleep(self.command_delay)
            if reply is None and _awaitable_hello(request):
                if not await self._stream_hello(conn, request, reader, writer):
                    return
                continue
            if reply is None:
                reply = self._dispatcher.run(conn, request)
            if request.more_to_come:
                continue  # the client asked for no answer (w=0)
            writer.write(self._encode(request, reply))
            await writer.drain()

    async def _stream_hello(
        self,
        conn: ConnectionState,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Awaitable hello: answer on a topology change or after ``maxAwaitTimeMS``.

        With the exhaust flag (PyMongo's streaming monitor), go on answering
        with ``moreToCome`` set, each time the topology changes or the wait
        passes, until the client closes the connection. Without it, answer
        once and go back to reading requests (return True; False: the connection is over).
        """
        self.stats.awaited_hellos += 1
        max_await = max(0.0, float(request.body.get("maxAwaitTimeMS", 0)) / 1000)
        while True:
            # Nothing may arrive while a hello waits; a read that returns is the end.
            eof = asyncio.ensure_future(reader.read(1))
            wait = asyncio.ensure_future(
                self.role.wait_for_change(request.body.get("topologyVersion"), max_await)
            )
            try:
                await asyncio.wait({wait, eof}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wait.cancel()
                eof.cancel()
                # Let the cancelled read finish before anyone reads this stream again.
                await asyncio.wait({wait, eof})
            if eof.done() and not eof.cancelled():
                return False  # closed by the client (or bytes mid-stream: a protocol error)
            reply = self._dispatcher.run(conn, request)
            stream = request.exhaust_allowed and reply.get("ok") == 1.0
            writer.write(self._encode(request, reply, more_to_come=stream))
            await writer.drain()
            if not stream:
                return True
            body = {**request.body, "topologyVersion": reply["topologyVersion"]}
            request = dataclasses.replace(request, body=body)

    async def _apply_faults(
        self, request: Request, reader: asyncio.StreamReader
    ) -> dict[str, Any] | str | None:
        """Run the faults for this command: None to proceed, an error reply, or "drop"."""
        name = canonical_name(request)
        for fault in self.faults.take("mongo", name):
            self.stats.faults_fired[f"{name}:{fault.kind}"] += 1
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "error":
                return error_reply(fault.status, f"injected fault on {name}")
            elif fault.kind == "throttle":
                return error_reply(
                    462,
                    f"injected throttle on {name}",
                    labels=("SystemOverloadedError", "RetryableError"),
                )
            elif fault.kind in ("stepdown", "down"):
                if self.on_topology_fault is None:
                    return error_reply(20, f"fault {fault.kind} needs a replica set")
                self.on_topology_fault(self, fault.kind, fault.delay)
                if fault.kind == "down":
                    return "drop"
            elif fault.kind == "hang":
                # Swallow whatever arrives until the client gives up and closes.
                while await reader.read(65536):
                    pass
                return "drop"
            else:
                return "drop"
        return None

    def _encode(
        self, request: Request, reply: dict[str, Any], *, more_to_come: bool = False
    ) -> bytes:
        response_id = next(self._response_ids)
        try:
            return encode_reply(request, reply, response_id, more_to_come=more_to_come)
        except Exception as exc:  # e.g. a document mongomock cannot round-trip
            log.warning("mongo.reply_unencodable", error=type(exc).__name__)
            return encode_reply(
                request, error_reply(1, f"reply not encodable: {type(exc).__name__}"), response_id
            )


def _awaitable_hello(request: Request) -> bool:
    """A monitor's awaitable hello: ``topologyVersion`` and ``maxAwaitTimeMS`` (MongoDB 4.4+)."""
    body = request.body
    return (
        canonical_name(request) in ("hello", "isMaster")
        and "topologyVersion" in body
        and "maxAwaitTimeMS" in body
    )


def restore_transport(writer: asyncio.StreamWriter, plain: asyncio.BaseTransport) -> None:
    """Give a writer whose ``start_tls`` failed its plain transport back.

    Otherwise its ``close()`` and ``__del__`` fail on ``None`` (CPython 3.11.7,
    asyncio/streams.py, reads ``self._transport``; a private attribute, so
    tests/standins/test_mongo_tls.py fails if it changes).
    """
    current: asyncio.BaseTransport | None = writer.transport
    if current is None:
        writer._transport = plain  # type: ignore[attr-defined]
