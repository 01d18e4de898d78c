"""What a credential source is, and the plumbing every built-in source shares.

A *source* is anything with ``name: str`` and ``async def fetch() -> Credentials``
(:class:`CredentialSource`), so users can plug in their own (Vault, a sidecar,
a custom STS call). Sources that hold a socket or a client also have an
idempotent ``aclose()`` and are async context managers; :func:`aclose_source`
closes any source, whether it has one or not.

:class:`SourceBase` gives the built-in sources their shared behaviour: structured
logging of each fetch (start, end, duration, source; never a secret; a failure
is logged here once, at warning, with its redacted message), the
"closed" state, the ``ResourceWarning`` for a source garbage-collected while it
still holds a connection, and the check that credentials did not arrive
already expired.
"""

from __future__ import annotations

import os
import re
import stat
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pool._internal import skew
from pool._internal.log import get_logger, key_hint
from pool._internal.redact import redact
from pool._internal.resource import AsyncResource
from pool._internal.scrub import register_secret
from pool.credentials import Credentials
from pool.errors import CredentialError, CredentialFetchError, PoolClosedError

__all__ = ["CredentialSource", "SourceBase", "aclose_source"]

_source_logs: dict[str, Any] = {}


def _log_for(source: object) -> Any:
    """``pool.sources.<module>`` for a built-in source, else ``pool.sources``."""
    module = type(source).__module__
    name = module if module.startswith("pool.sources.") else "pool.sources"
    log = _source_logs.get(name)
    if log is None:
        log = _source_logs[name] = get_logger(name)
    return log


@runtime_checkable
class CredentialSource(Protocol):
    """Anything that can fetch one set of AWS credentials.

    ``fetch()`` performs one lookup (no caching: that is
    :class:`pool.CredentialCache`'s job) and returns credentials whose
    ``source`` is ``name``. It raises :class:`pool.CredentialFetchError` with
    ``retryable`` set when the lookup failed. It may be called concurrently,
    but callers normally serialise it through a cache.
    """

    name: str

    async def fetch(self) -> Credentials:
        """Fetch one set of credentials."""
        ...


async def aclose_source(source: object) -> None:
    """Close ``source`` if it has an ``aclose()``; do nothing otherwise."""
    closer = getattr(source, "aclose", None)
    if closer is not None:
        await closer()


class SourceBase(AsyncResource):
    """Shared behaviour of the built-in sources.

    Subclasses implement :meth:`_fetch` and, when they hold resources,
    :meth:`_aclose`. ``fetch()`` after ``aclose()`` raises
    :class:`pool.PoolClosedError`. ``aclose()`` is idempotent.
    """

    name: str = "source"

    def __init__(self) -> None:
        self._closed = False

    async def fetch(self) -> Credentials:
        """Fetch one set of credentials, logging start, end and duration."""
        if self._closed:
            raise PoolClosedError(
                f"credential source {self.name!r} was used after aclose(); create a new one"
            )
        started = time.perf_counter()
        log = _log_for(self)
        log.debug("credentials.fetch.start", source=self.name)
        try:
            creds = await self._fetch()
        except CredentialError as exc:
            # The one log line per failed fetch (the cache logs only its decision).
            # Redacted again: a message may quote third-party text.
            log.warning(
                "credentials.fetch.failed",
                source=self.name,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                error=type(exc).__name__,
                retryable=getattr(exc, "retryable", None),
                status=getattr(exc, "status", None),
                code=getattr(exc, "code", None),
                reason=redact(str(exc), limit=1000),
            )
            raise
        log.info(
            "credentials.fetch.end",
            source=self.name,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            key=key_hint(creds.access_key_id),
            expires_in_s=None if creds.ttl_at_fetch is None else round(creds.ttl_at_fetch),
        )
        return creds

    async def _fetch(self) -> Credentials:
        raise NotImplementedError

    async def _aclose(self) -> None:
        """Release resources; called once by :meth:`aclose`."""

    def _holds_resources(self) -> bool:
        """Whether an unclosed instance would leak something (for the ResourceWarning)."""
        return False

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Release the source's connections or clients. Idempotent.

        Finishes whatever cancels the caller (the cancellation is re-raised
        once everything is released); a second call waits for the first.
        """
        self._closed = True
        await self._close_once(self._aclose)

    def __del__(self) -> None:
        # __init__ may have failed half-way: then there is nothing to warn about.
        try:
            leaking = not self._closed and self._holds_resources()
        except AttributeError:
            return
        if leaking:
            warnings.warn(
                f"credential source {self.name!r} was not closed; use 'async with' or aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}{' closed' if self._closed else ''}>"


# --- helpers shared by the sources -----------------------------------------------------

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def safe_code(value: object) -> str | None:
    """An error code from a response, only if it looks like one (never free text)."""
    if isinstance(value, str) and _SAFE_CODE.match(value):
        return value
    return None


def parse_expiration(value: object, *, what: str) -> datetime:
    """Parse an ISO 8601 timestamp (``2024-05-01T12:00:00Z``) into an aware UTC datetime.

    Raises ``ValueError`` naming ``what`` (never the value's neighbours).
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{what} is not an ISO 8601 timestamp") from None
    else:
        raise ValueError(f"{what} is not a timestamp string")
    if parsed.tzinfo is None:
        # AWS always sends UTC; a timestamp without a zone is read as UTC too.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def credentials_from_document(
    doc: Any, *, source: str, endpoint: str, token_field: str = "Token"
) -> Credentials:
    """Build credentials from the container/IMDS JSON document.

    The document carries ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and
    ``Expiration``. A missing or malformed field is a non-retryable
    :class:`CredentialFetchError` naming the field, never its value.
    """
    if not isinstance(doc, Mapping):
        raise CredentialFetchError(
            f"{source}: {endpoint} returned JSON that is not an object; "
            "check that the URI points at a credentials endpoint",
            source=source,
            retryable=False,
            code="MalformedResponse",
        )
    missing = [
        f
        for f in ("AccessKeyId", "SecretAccessKey", token_field, "Expiration")
        if not isinstance(doc.get(f), str) or not doc.get(f)
    ]
    if missing:
        raise CredentialFetchError(
            f"{source}: {endpoint} returned a credentials document without "
            f"{', '.join(missing)}; check that the URI points at a credentials endpoint",
            source=source,
            retryable=False,
            code="MalformedResponse",
        )
    try:
        expiration = parse_expiration(doc["Expiration"], what="Expiration")
    except ValueError as exc:
        raise CredentialFetchError(
            f"{source}: {endpoint} returned a malformed credentials document: {exc}",
            source=source,
            retryable=False,
            code="MalformedResponse",
        ) from None
    creds = Credentials(
        access_key_id=doc["AccessKeyId"],
        secret_access_key=doc["SecretAccessKey"],
        session_token=doc[token_field],
        expiration=expiration,
        source=source,
    )
    return ensure_not_expired(creds, endpoint=endpoint)


def ensure_not_expired(creds: Credentials, *, endpoint: str) -> Credentials:
    """Reject credentials that are already expired on arrival (non-retryable)."""
    if creds.expired():
        assert creds.expiration is not None
        measured = skew.describe()
        raise CredentialFetchError(
            f"{creds.source}: {endpoint} returned credentials that already expired at "
            f"{creds.expiration.isoformat()}; check the host clock (NTP) and the endpoint"
            + ("" if measured is None else f". {measured}"),
            source=creds.source,
            retryable=False,
            code="ExpiredOnArrival",
        )
    return creds


MAX_TOKEN_BYTES = 64 * 1024  # a projected service-account token or an EKS token: a few KB
TOKEN_READ_TIMEOUT = 2.0  # seconds, when the caller gives no fetch timeout
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _read_capped(path: str) -> bytes:
    """At most MAX_TOKEN_BYTES + 1 bytes of a *regular* file (blocking; run in a thread).

    Opened non-blocking so a FIFO (or a device) at the path cannot block the
    open; anything but a regular file is refused before a byte is read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)


class _NotRegular(Exception):
    pass


def _token_error(source: str, message: str, hint: str, code: str) -> CredentialFetchError:
    return CredentialFetchError(
        f"{source}: {message}; {hint}", source=source, retryable=False, code=code
    )


async def read_token_file(
    path: str, *, source: str, what: str, hint: str, read_timeout: float | None = None
) -> str:
    """Read a token file off the event loop (anyio's worker thread), bounded.

    Refused, as a non-retryable :class:`CredentialFetchError` naming the path
    (never the content): a file that is not a regular file (a FIFO must not
    block the cache's fetch), larger than :data:`MAX_TOKEN_BYTES`, not read
    within ``read_timeout`` seconds (default :data:`TOKEN_READ_TIMEOUT`; a hung
    network file system), unreadable, not UTF-8, empty, or holding control
    characters (NUL, DEL...) other than CR/LF/TAB. Surrounding whitespace is
    kept: callers decide what a valid token is.
    """
    import anyio  # local: keeps "import pool.sources.base" light for Lambda
    import anyio.to_thread

    limit = TOKEN_READ_TIMEOUT if read_timeout is None else read_timeout
    try:
        with anyio.fail_after(limit):
            data = await anyio.to_thread.run_sync(_read_capped, path, abandon_on_cancel=True)
    except TimeoutError:
        raise _token_error(source, f"reading {what} {path!r} took over {limit} s", hint,
                           "TokenFileUnreadable") from None  # fmt: skip
    except _NotRegular:
        not_regular = f"cannot read {what} {path!r}: not a regular file (a FIFO, a directory?)"
        raise _token_error(source, not_regular, hint, "TokenFileUnreadable") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _token_error(source, f"cannot read {what} {path!r}: {reason}", hint,
                           "TokenFileUnreadable") from exc  # fmt: skip
    if len(data) > MAX_TOKEN_BYTES:
        raise _token_error(source, f"{what} {path!r} is larger than {MAX_TOKEN_BYTES} bytes, "
                           "far more than a token", hint, "TokenFileTooLarge")  # fmt: skip
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # from None: the UnicodeDecodeError holds the file's bytes (the token).
        raise _token_error(source, f"{what} {path!r} is not UTF-8 text", hint,
                           "TokenFileUnreadable") from None  # fmt: skip
    register_secret(text, text.strip())  # scrubbed from every log record of the process
    if not text.strip():
        raise _token_error(source, f"{what} {path!r} is empty", hint, "TokenFileEmpty")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise _token_error(source, f"{what} {path!r} contains the control character "
                           f"U+{ord(bad.group()):04X} (at offset {bad.start()}), which no token "
                           "holds", hint, "TokenFileInvalid")  # fmt: skip
    return text
