"""The library's exception tree.

Three families are kept apart, as httpcore and anyio do:

* misuse: :class:`ConfigurationError` (bad settings, refused endpoints,
  nothing to detect) and :class:`PoolClosedError` (used after ``aclose()``);
* remote failure: :class:`CredentialFetchError` (a credential endpoint or STS
  said no, or did not answer) and :class:`AuthenticationError` (the MongoDB
  server refused the credentials);
* broken invariants: :class:`InvariantError`.

Messages say what was wrong and what to do about it. They never carry a
secret access key, a session token, a web identity token or an auth token.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "CredentialError",
    "CredentialFetchError",
    "CredentialsExpiredError",
    "InvariantError",
    "LeaseExpiredError",
    "NoCredentialsFoundError",
    "PoolClosedError",
    "PoolError",
    "WarmupError",
]


class PoolError(Exception):
    """Base class of every exception this library raises on purpose."""


class ConfigurationError(PoolError, ValueError):
    """A setting is missing, malformed or not allowed; fix the configuration."""


class PoolClosedError(PoolError, RuntimeError):
    """The cache or pool was used after ``aclose()``."""


class CredentialError(PoolError):
    """Base class for failures to obtain usable AWS credentials."""


class NoCredentialsFoundError(CredentialError, ConfigurationError):
    """Auto-detection found no credential source.

    ``checked`` lists what was looked at, in order, with why each was skipped.
    """

    def __init__(self, message: str, checked: list[str] | None = None) -> None:
        self.checked = list(checked or [])
        if self.checked:
            message = message + "\n" + "\n".join(f"  - {line}" for line in self.checked)
        super().__init__(message)


#: Error codes AWS services answer with when a caller must slow down (STS's
#: Query API ``Throttling``, the JSON APIs' ``ThrottlingException``, EC2's
#: ``RequestLimitExceeded``...); HTTP 429 (IMDS, the ECS and Pod Identity
#: agents) means the same.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
    }
)


class CredentialFetchError(CredentialError):
    """A credential source failed to return credentials.

    ``retryable`` tells whether trying again later may succeed (timeouts, 5xx,
    throttling) or not (access denied, invalid token, malformed response);
    ``throttled`` whether the endpoint asked to slow down (the cache then
    backs off longer).
    ``source`` is the short name of the source (``"ecs"``, ``"ec2"`` ...).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.retryable = retryable
        self.status = status
        self.code = code

    @property
    def throttled(self) -> bool:
        """The endpoint said "slow down" (HTTP 429 or a throttling code): back off longer."""
        return self.status == 429 or self.code in THROTTLING_CODES


class CredentialsExpiredError(CredentialError):
    """There are no credentials valid at this instant."""


class AuthenticationError(PoolError):
    """The MongoDB server refused the credentials (code 18, AuthenticationFailed)."""


class LeaseExpiredError(AuthenticationError):
    """A lease needed a *new* connection after its client's credentials had expired.

    A MONGODB-AWS connection is authenticated once, when it opens: the ones a
    lease already has keep working past the credentials' expiry, but MongoDB
    refuses every new one. Raised from ``async with cp.client()`` with the
    driver's error as ``__cause__``; ``generation`` is the client's number.
    """

    def __init__(self, message: str, *, generation: int) -> None:
        super().__init__(message)
        self.generation = generation


class WarmupError(PoolError):
    """A new client could not be connected and authenticated ahead of traffic."""


class InvariantError(PoolError, AssertionError):
    """An internal invariant was broken: a bug in this library; please report it."""
