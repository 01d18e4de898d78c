"""Warm-up failures turned into errors that name the cause: unreachable, TLS, refused, slow.

Two sources of truth, both PyMongo's public API (read from PyMongo 4.20.1):

* the client's ``topology_description``: each ``ServerDescription.error`` is
  the exception of the last failed check of that server by the driver's
  monitor (``AutoReconnect("127.0.0.1:1: [Errno 111] Connection refused ...")``,
  a DNS, timeout or TLS failure). The monitor checks right after the client
  opens, so a refused connection is known within milliseconds, long before
  server selection gives up (``serverSelectionTimeoutMS``, 30 s by default):
  :func:`watch_unreachable` returns as soon as *every* server reports an error;
* the ping's own exception: ``OperationFailure`` code 18 when the credentials
  are refused, ``ServerSelectionTimeoutError`` whose text lists the servers.

The wording differs at startup (nothing is serving: the pool does not
start) and at a rotation (the current client keeps serving; retried).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pool._internal import skew
from pool._internal.redact import describe
from pool.errors import CredentialsRefusedError, ServerUnreachableError, WarmupError

__all__ = [
    "AUTH_FAILED",
    "FIXES",
    "auth_failure",
    "classify",
    "first_error",
    "refused_error",
    "server_errors",
    "timeout_error",
    "unreachable_error",
    "warmup_error",
    "watch_unreachable",
    "with_role",
]

AUTH_FAILED = 18  # mongod's code for every failed authentication

_POLL = 0.02

# (reason, pattern in the driver's error text), most specific first.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tls", re.compile(r"SSL|TLS|CERTIFICATE|certificate|handshake", re.IGNORECASE)),
    (
        "dns",
        re.compile(
            r"Name or service not known|nodename nor servname|getaddrinfo|name resolution"
            r"|No address associated|DNS|does not exist|NXDOMAIN|resolve",
            re.IGNORECASE,
        ),
    ),
    ("refused", re.compile(r"Connection refused|Connect call failed|Errno 111|ECONNREFUSED")),
    ("timeout", re.compile(r"timed out|timeout", re.IGNORECASE)),
)

FIXES = {
    "refused": "Nothing accepts connections there: check the URI's host and port and that "
    "the server runs",
    "dns": "The host name does not resolve: check the URI (mongodb+srv:// needs its SRV and "
    "TXT records), the resolver, and private-endpoint DNS",
    "timeout": "No answer in time: check the Atlas IP access list, security groups and "
    "firewalls, VPC peering or private endpoint, and outbound port 27017",
    "tls": "The TLS handshake failed: Atlas needs tls=true (mongodb+srv:// implies it); check "
    "the CA bundle (tlsCAFile) and that no proxy intercepts TLS",
    "network": "The connection failed: see the driver's error for each server",
}

_REFUSED_CAUSES = (
    "Usual causes, most common first: (1) the IAM role of these credentials is not a "
    "database user: Atlas > Database Access > AWS IAM, user = the role ARN "
    "(arn:aws:iam::<account>:role/<name>, not the assumed-role session ARN; "
    "`python -m pool check` prints it); (2) this machine's clock is more than 15 minutes "
    "off (STS then answers SignatureDoesNotMatch to the server): check NTP/chrony; "
    "(3) the credentials expired or were revoked before the handshake; (4) the STS region "
    "the server calls does not accept them (a region where STS is disabled, or "
    "AWS_REGION/AWS_STS_REGIONAL_ENDPOINTS pointing elsewhere)."
)


def classify(text: str) -> str:
    """``"tls"``, ``"dns"``, ``"refused"``, ``"timeout"`` or ``"network"`` for an error text."""
    for reason, pattern in _KINDS:
        if pattern.search(text):
            return reason
    return "network"


def _topology(client: Any) -> Any:
    from pymongo import AsyncMongoClient, MongoClient

    if not isinstance(client, AsyncMongoClient | MongoClient):
        client = client.delegate  # Motor wraps a PyMongo MongoClient as ``delegate``
    return client.topology_description


def auth_failure(client: Any) -> BaseException | None:
    """A server's last error when it is a code 18 (the handshake was refused), else ``None``."""
    from pymongo.errors import OperationFailure

    for sd in _topology(client).server_descriptions().values():
        if isinstance(sd.error, OperationFailure) and sd.error.code == AUTH_FAILED:
            return sd.error
    return None


def first_error(client: Any) -> BaseException | None:
    """The first server's last check error (the cause to chain), or ``None``."""
    for sd in _topology(client).server_descriptions().values():
        if sd.error is not None:
            return sd.error  # type: ignore[no-any-return]
    return None


def server_errors(client: Any, secrets: tuple[str, ...] = ()) -> dict[str, str]:
    """``host:port`` → the last check's error text, for each server that has one."""
    out: dict[str, str] = {}
    for (host, port), sd in _topology(client).server_descriptions().items():
        if sd.error is not None:
            out[f"{host}:{port}"] = describe(sd.error, *secrets, limit=300)
    return out


async def watch_unreachable(client: Any, secrets: tuple[str, ...] = ()) -> dict[str, str]:
    """Return every server's error once every known server's last check failed.

    Never returns while one server answers; cancel it when the ping ends.
    """
    while True:
        servers = _topology(client).server_descriptions()
        if servers and all(sd.error is not None for sd in servers.values()):
            return server_errors(client, secrets)
        await asyncio.sleep(_POLL)


def _reason(servers: dict[str, str]) -> str:
    kinds = {classify(text) for text in servers.values()}
    for reason in ("tls", "dns", "refused", "timeout"):
        if reason in kinds:
            return reason
    return "network"


def _consequence(startup: bool) -> str:
    if startup:
        return "at startup; no client is serving, so the pool does not start"
    return "for the next client; the current client keeps serving and the warm-up is retried"


def unreachable_error(driver: str, servers: dict[str, str], *, startup: bool) -> WarmupError:
    """The server(s) could not be reached; ``servers`` as :func:`server_errors` gives them."""
    reason = _reason(servers)
    where = "; ".join(f"{addr}: {text}" for addr, text in servers.items())
    return ServerUnreachableError(
        f"{driver}: cannot reach the MongoDB server ({reason}) {_consequence(startup)}. "
        f"{FIXES[reason]}. Driver said: {where}",
        reason=reason,
        servers=servers,
        startup=startup,
    )


def refused_error(
    driver: str, *, key: str, source: str, startup: bool, role: str | None = None
) -> CredentialsRefusedError:
    """The server refused the credentials (code 18) while the client warmed up.

    ``role`` is the role ARN the source assumes, when it knows it (web
    identity, role chaining): the database user must be exactly that ARN.
    """
    what = "the AWS credentials" if startup else "the new AWS credentials"
    of_role = f" of role {role}" if role else ""
    found = skew.describe()
    measured = "" if found is None else f" {found}"
    error = CredentialsRefusedError(
        f"{driver}: the MongoDB server refused {what} {key}{of_role} from source "
        f"{source or '?'} (AuthenticationFailed, code 18) {_consequence(startup)}. "
        f"{_REFUSED_CAUSES}{measured}",
        key=key,
        source=source,
        startup=startup,
    )
    error.role_arn = role
    return error


def with_role(exc: CredentialsRefusedError, role: str | None, driver: str) -> BaseException:
    """``exc`` again, naming ``role`` (a source's ``role_arn``); ``exc`` itself without one."""
    if not role or exc.role_arn:
        return exc
    error = refused_error(driver, key=exc.key, source=exc.source, startup=exc.startup, role=role)
    return error


def timeout_error(
    driver: str, within: float, servers: dict[str, str], *, startup: bool
) -> WarmupError:
    """The warm-up did not finish within ``within`` seconds."""
    if servers:
        return unreachable_error(driver, servers, startup=startup)
    text = (
        f"{driver}: the warm-up did not finish in time (warmup_timeout={within:g} s) "
        f"{_consequence(startup)}. The server answers but slowly: raise warmup_timeout, "
        "or lower warm_connections."
    )
    return WarmupError(text, startup=startup)


def warmup_error(
    driver: str,
    exc: BaseException,
    secrets: tuple[str, ...] = (),
    *,
    client: Any = None,
    within: float = 0.0,
    startup: bool = False,
    key: str = "-",
    source: str = "",
) -> WarmupError:
    """The typed error naming why a warm-up failed with ``exc`` (the driver's or a timeout)."""
    from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

    if isinstance(exc, OperationFailure) and exc.code == AUTH_FAILED:
        return refused_error(driver, key=key, source=source, startup=startup)
    servers = {} if client is None else server_errors(client, secrets)
    if isinstance(exc, TimeoutError):
        return timeout_error(driver, within, servers, startup=startup)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = describe(exc, *secrets, limit=300)
        return unreachable_error(driver, servers or {"servers": text}, startup=startup)
    where = "at startup; no client is serving" if startup else "; the current client keeps serving"
    return WarmupError(
        f"{driver}: warm-up failed with {describe(exc, *secrets, limit=200)} {where}",
        startup=startup,
    )
