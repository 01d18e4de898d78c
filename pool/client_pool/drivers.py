"""One small interface over PyMongo's ``AsyncMongoClient`` and Motor.

The pool needs four things from a driver: build a client from a URI, a
credential supplier and the user's options; warm it (open and authenticate
connections ahead of traffic); close it; and tell what an error means
(authentication refused, client closed). Everything driver-specific lives
here, so :mod:`pool.client_pool` never imports PyMongo or Motor.

How warm-up works, and why this way. PyMongo opens connections lazily and at
most ``maxConnecting`` (default 2) at a time, and a burst of concurrent
operations mostly queues for the connections already open, so N concurrent
pings do not leave N connections behind. The driver's own mechanism for
"keep N authenticated connections ready" is ``minPoolSize``, filled by
``_process_periodic_tasks``. Warm-up pings once (which connects, selects the
server and authenticates the first connection, so a refused credential fails
fast with code 18), then raises the pools' minimum to ``warm_connections``
and runs that pool-filling step itself, ``maxConnecting`` copies in
parallel, until a CMAP listener has seen the connections become ready; then
it puts the minimum back to the user's ``minPoolSize`` (0 by default).

Why not simply build the client with ``minPoolSize=warm_connections``, as
earlier versions did: PyMongo's periodic task would keep filling the client
after the swap, and once a *replaced* client's credentials expire each
attempt fails with code 18 and clears its pool under the leases still
draining on it. So no client opens connections on its own beyond the user's
``minPoolSize``, and a replaced client none at all (:meth:`Driver.stop_filling`
when it starts draining): its leases keep the authenticated connections they
have, which outlive the credentials. The details, and why a fill step is
never cancelled half-way (PyMongo leaks the socket of a cancelled connect),
are in :mod:`pool.client_pool.filling`. ``_process_periodic_tasks`` is
private; if a PyMongo release drops it, warm-up waits for the driver's own
periodic task, which fills the raised minimum within about a second.

Motor caveat: Motor runs every client's I/O on one process-wide thread pool
(``MOTOR_MAX_WORKERS``, default CPU count x 5). Building, filling and closing
a Motor client here run on anyio's worker threads instead, so a rotation
takes at most one of Motor's threads (for the ping) away from traffic.

Future provider-callback mode: clients receive credentials through a
:class:`CredentialSupplier`, not raw strings. Drivers that accept an AWS
credential *callback* (Node >= 6.15 ``AWS_CREDENTIAL_PROVIDER``; the spec now
requires it) would get a supplier whose ``client_options()`` returns that
callback, and the pool would then keep a single generation instead of
rotating clients. Nothing else here would change.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio.to_thread
from pymongo.errors import AutoReconnect, InvalidOperation, OperationFailure, PyMongoError
from pymongo.errors import ConfigurationError as PyMongoConfigurationError

from pool._internal.log import get_logger
from pool._internal.redact import describe
from pool._internal.shield import finish
from pool.client_pool import filling
from pool.client_pool.monitor import ConnectionMonitor
from pool.client_pool.options import check_client_options, client_kwargs, secrets_of
from pool.client_pool.warmup import Warming
from pool.errors import ConfigurationError

__all__ = [
    "AUTH_FAILED",
    "ConnectionMonitor",
    "CredentialSupplier",
    "Driver",
    "DriverClient",
    "DriverName",
    "MotorDriver",
    "PyMongoDriver",
    "check_client_options",
    "get_driver",
    "is_auth_failure",
    "is_client_closed",
    "is_pool_paused",
    "live_clients",
]

DriverName = Literal["motor", "pymongo"]

AUTH_FAILED = 18  # mongod's code for every failed authentication ("AuthenticationFailed")

_log = get_logger(__name__)


class CredentialSupplier(Protocol):
    """What a driver adapter needs from credentials: driver keyword options.

    :class:`pool.Credentials` is one (explicit ``username``/``password``/
    ``authMechanismProperties``). A future supplier may return a credential
    callback instead; see the module docstring.
    """

    def client_options(self) -> dict[str, Any]: ...


@dataclass(eq=False)
class DriverClient:
    """One driver client object plus what the pool tracks about it."""

    client: Any
    driver: DriverName
    monitor: ConnectionMonitor = field(repr=False)
    closing: bool = False  # close() started
    closed: bool = False  # close() returned
    min_pool_size: int = 0  # the user's minPoolSize: what the pools fill to outside warm-up
    filling_stopped: bool = False  # stop_filling() was called: the client opens nothing itself
    reserved: int = 0  # per member, what its warm-up may open (max_connections_per_member)
    max_pool_size: float = float("inf")  # maxPoolSize (inf: no limit): what one member's pool holds
    # Set when the client is needed at once (the serving one was refused): stop pacing.
    hurry: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # The credentials' secret parts, only to scrub them from error text.
    secrets: tuple[str, ...] = field(default=(), repr=False)


_live: set[int] = set()  # ids of DriverClients built and not yet closed (leak checks)
_auth_loaded: set[str] = set()  # lazily imported auth modules already loaded, process-wide


def live_clients() -> int:
    """How many clients the adapters built and have not closed yet, process-wide."""
    return len(_live)


def is_auth_failure(exc: BaseException) -> bool:
    """True when the server refused the credentials (``OperationFailure`` code 18).

    MONGODB-AWS has no re-authentication, so this only happens while opening
    a new connection, before the operation's own command was sent.
    """
    return isinstance(exc, OperationFailure) and exc.code == AUTH_FAILED


def is_client_closed(exc: BaseException) -> bool:
    """True when the operation failed because its client had been closed.

    PyMongo raises ``InvalidOperation("Cannot use ... after close")``, or its
    internal ``_PoolClosedError`` when a pool closed under a waiting checkout.
    """
    if isinstance(exc, InvalidOperation) and "after close" in str(exc):
        return True
    return isinstance(exc, PyMongoError) and type(exc).__name__ == "_PoolClosedError"


def is_pool_paused(exc: BaseException) -> bool:
    """True for PyMongo's ``AutoReconnect("connection pool paused")``.

    Raised at checkout, before anything is sent, while the driver waits to
    re-check a server; after an authentication failure it is a symptom of it.
    """
    return isinstance(exc, AutoReconnect) and "connection pool paused" in str(exc)


async def _load_auth_modules(names: tuple[str, ...]) -> None:
    """Import the modules PyMongo imports lazily at the first handshake, off the loop.

    PyMongo imports ``pymongo_auth_aws`` (which imports boto3 and botocore,
    ~100-170 ms) inside the first MONGODB-AWS handshake; with the async client
    that handshake runs on the event loop and would stall it. Importing them
    once per process on a worker thread first makes the handshake's imports
    dictionary lookups. A missing ``pymongo_auth_aws`` is left for PyMongo to
    report (with its "install pymongo[aws]" message) at the handshake.
    """
    for name in names:
        if name in _auth_loaded:
            continue
        try:
            await anyio.to_thread.run_sync(importlib.import_module, name)
        except ImportError as exc:
            _log.debug("auth_module_missing", module=name, error=type(exc).__name__)
        _auth_loaded.add(name)


class Driver(Warming):
    """Shared build/warm-up/close logic; subclasses supply the driver calls."""

    name: DriverName
    # Modules PyMongo imports inside the first authentication (see _load_auth_modules).
    auth_modules: tuple[str, ...] = ("pymongo_auth_aws",)
    # Whether close() first lets connection attempts in flight finish (the
    # asyncio driver: a cancelled attempt leaks its socket; see filling).
    settle_before_close = False

    def _new_client(self, uri: str, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _core(self, client: Any) -> Any:
        """The PyMongo client object behind ``client`` (Motor: its delegate)."""
        return client

    async def _make(self, uri: str, kwargs: dict[str, Any]) -> Any:
        return self._new_client(uri, kwargs)

    async def _ping(self, client: Any) -> None:
        await client.admin.command("ping")

    async def _fill_once(self, client: Any) -> None:
        raise NotImplementedError

    async def _close(self, client: Any) -> None:
        raise NotImplementedError

    async def build(
        self,
        uri: str,
        supplier: CredentialSupplier,
        options: Mapping[str, Any],
    ) -> DriverClient:
        """A new, unconnected client for ``supplier``'s credentials.

        Raises :class:`pool.ConfigurationError` for options the driver rejects.
        Cancellation-safe: the client is built in a task of its own, so a
        caller cancelled meanwhile (``task.cancel()`` interrupts even a wait on
        a worker thread) does not orphan it: the build is awaited, its client
        closed, and the cancellation re-raised.
        """
        monitor = ConnectionMonitor()
        kwargs = client_kwargs(supplier.client_options(), options, monitor)
        await _load_auth_modules(self.auth_modules)
        task = asyncio.get_running_loop().create_task(self._build_handle(uri, kwargs, monitor))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await finish(self._close_when_built(task), name="pool.discard-build")
            raise

    async def _build_handle(
        self, uri: str, kwargs: dict[str, Any], monitor: ConnectionMonitor
    ) -> DriverClient:
        try:
            client = await self._make(uri, kwargs)
        except (PyMongoConfigurationError, TypeError, ValueError) as exc:
            # Not chained: the exception's arguments may hold option values.
            raise ConfigurationError(
                f"{self.name} refused the client options ({describe(exc, *secrets_of(kwargs))}); "
                "check the URI and the ClientPool keyword arguments"
            ) from None
        handle = DriverClient(
            client=client,
            driver=self.name,
            monitor=monitor,
            secrets=secrets_of(kwargs),
            min_pool_size=filling.min_pool_size(self._core(client)),
            max_pool_size=filling.max_pool_size(self._core(client)),
        )
        _live.add(id(handle))  # counted from here on, even if the caller is gone
        return handle

    async def _close_when_built(self, build: asyncio.Task[DriverClient]) -> None:
        try:
            handle = await build
        except BaseException:  # nothing was built, or it failed: nothing to close
            return
        await self.close(handle)

    def stop_filling(self, handle: DriverClient) -> None:
        """From now on the client opens connections only for its operations, never on its own.

        Called when a generation starts draining (and before closing): its
        leases keep the authenticated connections they have, and no
        background fill tries to authenticate with credentials that may
        expire. Synchronous; takes effect before the driver's next attempt.
        """
        handle.filling_stopped = True
        filling.set_min_pool_size(self._core(handle.client), 0)

    async def close(self, handle: DriverClient) -> None:
        """Close the client (idempotent). Does not wait for operations in flight.

        Callers shield this from cancellation; errors are logged, not raised,
        because a close that fails must not stop the others. On the asyncio
        driver it first lets connection attempts in flight finish (up to
        ``connectTimeoutMS``): closing cancels the driver's own fill task,
        and a connect cancelled half-way leaks its socket.
        """
        if handle.closing:
            return
        handle.closing = True
        try:
            self.stop_filling(handle)
            if self.settle_before_close:
                await self._settle_connects(handle)
            await self._close(handle.client)
        except Exception as exc:  # the client is unusable either way
            _log.warning("client_close_failed", driver=self.name, error=type(exc).__name__)
        finally:
            handle.closed = True
            _live.discard(id(handle))

    async def _settle_connects(self, handle: DriverClient) -> None:
        """Wait (real time, bounded by the connect timeout) until no connection is being opened."""
        loop = asyncio.get_running_loop()
        until = loop.time() + filling.connect_grace(self._core(handle.client))
        while handle.monitor.pending and (left := until - loop.time()) > 0:
            await handle.monitor.wait_change(left)


class PyMongoDriver(Driver):
    """PyMongo's native asyncio client, ``pymongo.AsyncMongoClient``."""

    name: DriverName = "pymongo"
    auth_modules = ("pymongo_auth_aws", "pymongo.asynchronous.auth")
    settle_before_close = True

    def _new_client(self, uri: str, kwargs: dict[str, Any]) -> Any:
        from pymongo import AsyncMongoClient

        return AsyncMongoClient(uri, **kwargs)

    async def _ping(self, client: Any) -> None:
        await client.aconnect()
        await client.admin.command("ping")

    async def _fill_once(self, client: Any) -> None:
        step = getattr(client, "_process_periodic_tasks", None)
        if step is not None:
            await step()

    async def _close(self, client: Any) -> None:
        await client.close()


class MotorDriver(Driver):
    """Motor's ``AsyncIOMotorClient`` (a PyMongo ``MongoClient`` run on threads).

    Its blocking parts (construction, which may resolve SRV records; filling
    the pool; ``close()``, which sends ``endSessions``) run on anyio worker
    threads, never on the event loop nor on Motor's shared executor.
    """

    name: DriverName = "motor"
    auth_modules = ("pymongo_auth_aws", "pymongo.synchronous.auth")

    def _new_client(self, uri: str, kwargs: dict[str, Any]) -> Any:
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(uri, **kwargs)

    def _core(self, client: Any) -> Any:
        return client.delegate

    async def _make(self, uri: str, kwargs: dict[str, Any]) -> Any:
        kwargs = {**kwargs, "io_loop": asyncio.get_running_loop()}
        return await anyio.to_thread.run_sync(self._new_client, uri, kwargs)

    async def _fill_once(self, client: Any) -> None:
        step = getattr(client.delegate, "_process_periodic_tasks", None)
        if step is not None:
            await anyio.to_thread.run_sync(step)

    async def _close(self, client: Any) -> None:
        await anyio.to_thread.run_sync(client.close)


_DRIVERS: dict[str, type[Driver]] = {"pymongo": PyMongoDriver, "motor": MotorDriver}


def get_driver(name: str) -> Driver:
    """The adapter for ``"pymongo"`` or ``"motor"``; anything else is a ConfigurationError.

    Takes any ``str`` (``os.environ["DRIVER"]`` type-checks) and validates it here.
    """
    adapter = _DRIVERS.get(name) if isinstance(name, str) else None
    if adapter is None:
        raise ConfigurationError(
            f"driver must be 'pymongo' or 'motor', not {name!r}; "
            "pass driver='pymongo' (PyMongo's AsyncMongoClient) or driver='motor'"
        )
    return adapter()
