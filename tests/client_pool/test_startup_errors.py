"""Startup and rotation warm-up errors that name the cause, and come fast when the driver knows."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pool import ClientPool
from pool.cache import CredentialCache
from pool.client_pool.diagnose import classify
from pool.credentials import Credentials
from pool.errors import (
    AuthenticationError,
    CredentialsRefusedError,
    ServerUnreachableError,
    WarmupError,
)
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import MintingSource, rotate

# The driver's own defaults (30 s): the error must come long before them.
SLOW = {"serverSelectionTimeoutMS": 30000, "warmup_timeout": 30.0}
UNMAPPED = "arn:aws:iam::123456789012:role/not-a-database-user"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RoleSource(MintingSource):
    """Mints credentials for ``role_arn`` (one the server may not map to a user).

    Like the STS sources, it exposes ``role_arn``: the pool names it when refused.
    """

    def __init__(self, authority: CredentialAuthority, role_arn: str) -> None:
        super().__init__(authority)
        self.role_arn = role_arn

    async def fetch(self) -> Credentials:
        issued = self.authority.mint(self.role_arn, lifetime=self.lifetime)
        creds = Credentials(
            access_key_id=issued.access_key_id,
            secret_access_key=issued.secret_access_key,
            session_token=issued.session_token,
            expiration=issued.expiration,
            source="test",
        )
        self.minted.append(creds)
        return creds


async def start_error(uri: str, source: Any, driver: str, **options: Any) -> BaseException:
    """The error ClientPool.start() raises; the guard (10 s) is far below the 30 s defaults."""
    async with asyncio.timeout(10):
        with pytest.raises(WarmupError) as info:
            async with ClientPool(uri, credentials=source, driver=driver, **options):  # type: ignore[call-overload]
                pass
    return info.value


async def test_refused_connection_fails_at_once_naming_the_cause(
    driver: str, source: MintingSource
) -> None:
    """Nothing listening: ServerUnreachableError(refused) with the driver's error chained, fast."""
    port = closed_port()
    exc = await start_error(f"mongodb://127.0.0.1:{port}/", source, driver, **SLOW)
    assert isinstance(exc, ServerUnreachableError)
    assert (exc.reason, exc.startup) == ("refused", True)
    assert f"127.0.0.1:{port}" in exc.servers
    text = str(exc)
    assert "at startup; no client is serving" in text and "keeps serving" not in text
    assert "Errno 111" in text
    assert type(exc.__cause__).__name__ == "AutoReconnect"


async def test_tls_failure_is_named(driver: str, source: MintingSource) -> None:
    """TLS asked of a server that does not speak it: ServerUnreachableError(tls)."""

    async def plain_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # What a mongod without TLS does with a ClientHello: not a valid message; hang up.
        await reader.read(16)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(plain_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        exc = await start_error(f"mongodb://127.0.0.1:{port}/", source, driver, tls=True, **SLOW)
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(exc, ServerUnreachableError) and exc.reason == "tls", str(exc)
    assert "tlsCAFile" in str(exc)


async def test_unmapped_role_at_startup_names_key_and_causes(
    driver: str, mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """Code 18 at startup: CredentialsRefusedError with the key hint, startup wording, causes."""
    source = RoleSource(authority, UNMAPPED)
    exc = await start_error(mongo.uri, source, driver, **SLOW)
    assert isinstance(exc, CredentialsRefusedError) and isinstance(exc, AuthenticationError)
    assert exc.startup and exc.source == "test"
    assert exc.role_arn == UNMAPPED and f"of role {UNMAPPED}" in str(exc)  # the source's role_arn
    assert type(exc.__cause__).__name__ == "OperationFailure"
    key = source.minted[0].access_key_id
    assert exc.key.startswith(key[:4]) and key not in str(exc)
    text = str(exc)
    assert "no client is serving" in text and "keeps serving" not in text
    for cause in ("database user", "clock", "expired", "STS region"):
        assert cause in text
    for secret in source.secrets():
        assert secret not in text


@pytest.fixture
async def skewed_mongo() -> AsyncIterator[tuple[MongoStandIn, CredentialAuthority]]:
    """A server (and STS behind it) whose clock runs 20 minutes ahead of this machine's."""
    authority = CredentialAuthority(default_lifetime=3600.0, clock=lambda: time.time() + 1200)
    async with MongoStandIn(authority) as server:
        yield server, authority


async def test_clock_skew_refusal_mentions_the_clock(
    driver: str, skewed_mongo: tuple[MongoStandIn, CredentialAuthority]
) -> None:
    """Fresh credentials refused under 20 min of clock skew: the message names the clock."""
    server, authority = skewed_mongo
    exc = await start_error(server.uri, MintingSource(authority), driver, **SLOW)
    assert isinstance(exc, CredentialsRefusedError)
    assert "clock is more than 15 minutes off" in str(exc)


async def test_refusal_at_rotation_says_the_current_client_keeps_serving(
    driver: str, mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """Code 18 for the next client: rotation wording, recorded as the last warm-up error."""
    source = MintingSource(authority)
    async with (
        CredentialCache(source) as cache,
        ClientPool(
            mongo.uri, credentials=cache, driver=driver, serverSelectionTimeoutMS=5000
        ) as cp,
    ):
        source.fetch = RoleSource(authority, UNMAPPED).fetch  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            await rotate(cp, cache, timeout=1.0)
        ready = cp.health().ready
        assert ready.status == "degraded"
        (message,) = [r for r in ready.reasons if "warm-up failed" in r]
        assert "keeps serving" in message and "no client is serving" not in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("h:1: [Errno 111] Connection refused", "refused"),
        ("h:1: [Errno 111] Connect call failed ('h', 1)", "refused"),
        ("h:1: [Errno -2] Name or service not known", "dns"),
        ("The DNS query name does not exist: _mongodb._tcp.x.example.net.", "dns"),
        ("h:1: timed out (configured timeouts: connectTimeoutMS: 20000.0ms)", "timeout"),
        ("h:1: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "tls"),
        ("h:1: something else", "network"),
    ],
)
def test_classify_network_errors(text: str, reason: str) -> None:
    """The driver's error texts (PyMongo 4.20) map to the reason the message explains."""
    assert classify(text) == reason


async def test_dns_failure_is_named(
    driver: str, source: MintingSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host name that does not resolve: ServerUnreachableError(dns), without a real lookup."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "db.invalid":  # answered here: no query leaves the machine
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    exc = await start_error("mongodb://db.invalid:27017/", source, driver, **SLOW)
    assert isinstance(exc, ServerUnreachableError) and exc.reason == "dns", str(exc)
    assert "does not resolve" in str(exc) and "db.invalid:27017" in exc.servers


async def test_silent_server_is_a_timeout(driver: str, source: MintingSource) -> None:
    """A server that accepts but never answers: reason timeout, the access list named."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        uri = f"mongodb://127.0.0.1:{port}/"
        exc = await start_error(uri, source, driver, connectTimeoutMS=500, **SLOW)
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(exc, ServerUnreachableError) and exc.reason == "timeout", str(exc)
    assert "IP access list" in str(exc)


async def test_untrusted_certificate_is_named_tls(
    driver: str, authority: CredentialAuthority, source: MintingSource
) -> None:
    """A TLS server whose CA the client does not trust: ServerUnreachableError(tls), fast."""
    from pool.standins.mongo.tls import TlsMaterial

    material = TlsMaterial()
    server = MongoStandIn(authority)
    try:
        await server.start(tls=material.server_context())
        exc = await start_error(server.uri, source, driver, **SLOW)  # no tlsCAFile
    finally:
        await server.aclose()
        material.close()
    assert isinstance(exc, ServerUnreachableError) and exc.reason == "tls", str(exc)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate" in str(exc)
