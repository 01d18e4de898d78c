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
    "CredentialsRefusedError",
    "InvariantError",
    "LeaseExpiredError",
    "NoAwsEnvironmentError",
    "NoCredentialsFoundError",
    "PoolClosedError",
    "PoolError",
    "ServerUnreachableError",
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


class NoAwsEnvironmentError(NoCredentialsFoundError, CredentialFetchError):
    """Nothing configured, and the instance metadata service (the last resort) did not answer.

    What :func:`pool.sources.from_environment`'s fallback source raises off
    AWS (a laptop, CI): both a :class:`NoCredentialsFoundError` (``checked``
    lists what was looked at) and a retryable :class:`CredentialFetchError`
    (on EC2, IMDS may come back).
    """

    def __init__(self, message: str, *, checked: list[str], code: str | None = None) -> None:
        # Not the parents' __init__: in this MRO NoCredentialsFoundError's super()
        # is CredentialFetchError, whose signature differs.
        self.checked = list(checked)
        lines = "\n".join(f"  - {line}" for line in self.checked)
        Exception.__init__(self, f"{message}\n{lines}" if lines else message)
        self.source = "ec2"
        self.retryable = True
        self.status = None
        self.code = code


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
    """A new client could not be connected and authenticated ahead of traffic.

    ``startup`` is True when it was the pool's first client (nothing serves;
    :meth:`pool.ClientPool.start` raises it), False at a rotation (the
    current client keeps serving and the warm-up is retried).
    """

    def __init__(self, message: str, *, startup: bool = False) -> None:
        super().__init__(message)
        self.startup = startup


class ServerUnreachableError(WarmupError):
    """No MongoDB server could be reached: nothing listening, DNS, a timeout, or TLS.

    ``reason`` is ``"refused"``, ``"dns"``, ``"timeout"``, ``"tls"`` or
    ``"network"``; ``servers`` maps each ``host:port`` to the driver's error
    text for it (redacted).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        servers: dict[str, str] | None = None,
        startup: bool = False,
    ) -> None:
        super().__init__(message, startup=startup)
        self.reason = reason
        self.servers = dict(servers or {})


class CredentialsRefusedError(WarmupError, AuthenticationError):
    """The server refused a new client's AWS credentials (code 18) while it warmed up.

    ``key`` is the access key id's hint (never the secret), ``source`` the
    credential source's name and ``role_arn`` the role the source assumes,
    when it knows it (web identity, role chaining; ``None`` otherwise).
    """

    def __init__(self, message: str, *, key: str, source: str, startup: bool = False) -> None:
        super().__init__(message, startup=startup)
        self.key = key
        self.source = source
        self.role_arn: str | None = None


class InvariantError(PoolError, AssertionError):
    """An internal invariant was broken: a bug in this library; please report it."""
