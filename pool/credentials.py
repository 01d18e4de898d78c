"""Immutable AWS credentials with expiry arithmetic on the monotonic clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pool._internal.clock import SYSTEM_CLOCK
from pool._internal.log import key_hint
from pool._internal.scrub import register_secret
from pool.errors import ConfigurationError

__all__ = ["Credentials"]


@dataclass(frozen=True, repr=False, eq=False)
class Credentials:
    """One set of AWS credentials, as a source returned it.

    ``expiration`` is an aware UTC datetime, or ``None`` for long-term keys.
    At construction the remaining lifetime is read once against the wall clock
    (:attr:`ttl_at_fetch`) and pinned to the monotonic clock, so later
    wall-clock jumps (NTP steps, a frozen Lambda sandbox) do not change the
    answer of :meth:`remaining`. Both readings come from
    :data:`pool._internal.clock.SYSTEM_CLOCK`: a set is built by a source, which
    knows no other clock; a cache on another clock (a test's fake) converts
    :meth:`remaining` onto its own clock the moment it accepts the set.

    ``repr`` and ``str`` never show the secret key or the session token.
    Two credentials are equal when key id, secret and token are equal: the
    same credentials handed out again are not a rotation.
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: datetime | None = None
    source: str = ""
    ttl_at_fetch: float | None = field(init=False)
    monotonic_deadline: float | None = field(init=False)

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"Credentials.{name} must be a non-empty string")
        if self.session_token is not None and (
            not isinstance(self.session_token, str) or not self.session_token
        ):
            raise ConfigurationError("Credentials.session_token must be a non-empty string or None")
        exp = self.expiration
        if exp is not None:
            if not isinstance(exp, datetime) or exp.tzinfo is None:
                raise ConfigurationError(
                    "Credentials.expiration must be an aware datetime (UTC) or None; "
                    "got a naive datetime or another type"
                )
            ttl: float | None = exp.timestamp() - SYSTEM_CLOCK.time()
            deadline: float | None = SYSTEM_CLOCK.monotonic() + ttl  # type: ignore[operator]
        else:
            ttl = None
            deadline = None
        register_secret(self.secret_access_key, self.session_token)  # scrubbed from every log
        object.__setattr__(self, "ttl_at_fetch", ttl)
        object.__setattr__(self, "monotonic_deadline", deadline)

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds until expiry (negative once expired), or ``None`` for long-term keys.

        ``now`` is a ``SYSTEM_CLOCK.monotonic()`` (:func:`time.monotonic`)
        reading; by default, the current one.
        """
        if self.monotonic_deadline is None:
            return None
        return self.monotonic_deadline - (SYSTEM_CLOCK.monotonic() if now is None else now)

    def expired(self, now: float | None = None, *, margin: float = 0.0) -> bool:
        """Whether the credentials expire within ``margin`` seconds of ``now``."""
        left = self.remaining(now)
        return left is not None and left <= margin

    @property
    def temporary(self) -> bool:
        """True for credentials with a session token (STS-issued)."""
        return self.session_token is not None

    def same_keys(self, other: Credentials | None) -> bool:
        """True when ``other`` is the very same key id, secret and token."""
        return (
            other is not None
            and self.access_key_id == other.access_key_id
            and self.secret_access_key == other.secret_access_key
            and self.session_token == other.session_token
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self.same_keys(other)

    def __hash__(self) -> int:
        return hash((self.access_key_id, self.secret_access_key, self.session_token))

    def client_options(self) -> dict[str, Any]:
        """Keyword options for ``MongoClient``/``AsyncMongoClient``/Motor.

        Credentials go to the driver as keyword options, never into a URI string.
        """
        # In use again: keep its secrets among the most recent in the bounded registry.
        register_secret(self.secret_access_key, self.session_token)
        opts: dict[str, Any] = {
            "username": self.access_key_id,
            "password": self.secret_access_key,
            "authMechanism": "MONGODB-AWS",
            # The only source MONGODB-AWS allows. Atlas's mongodb+srv TXT record
            # says authSource=admin, which PyMongo would otherwise apply, then refuse.
            "authSource": "$external",
        }
        if self.session_token is not None:
            opts["authMechanismProperties"] = {"AWS_SESSION_TOKEN": self.session_token}
        return opts

    def __repr__(self) -> str:
        exp = self.expiration.isoformat() if self.expiration else None
        return (
            f"Credentials(access_key_id={key_hint(self.access_key_id)!r}, "
            f"secret_access_key='***', session_token={'***' if self.session_token else None!r}, "
            f"expiration={exp!r}, source={self.source!r})"
        )

    __str__ = __repr__
