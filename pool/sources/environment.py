"""Credentials from environment variables (AWS Lambda, CI, local shells).

Lambda puts the function role's temporary credentials in ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``. This module imports
neither boto3, botocore nor aiobotocore, so the Lambda cold-start path stays
cheap; and it does no I/O at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources.base import SourceBase, ensure_not_expired, parse_expiration

__all__ = ["EnvironmentProblem", "EnvironmentSource", "credentials_from_environ"]

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
# AWS_SESSION_TOKEN is the standard name; AWS_SECURITY_TOKEN is the legacy one
# botocore still reads second.
TOKEN_VARS = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
EXPIRATION = "AWS_CREDENTIAL_EXPIRATION"


class EnvironmentProblem(ValueError):
    """The variables are missing or malformed: ``code`` classifies it, the message says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def missing_variable(env: Mapping[str, str], *, source: str) -> str | None:
    """Why ``env`` holds no key pair (naming the missing variable), or ``None``."""
    if not env.get(ACCESS_KEY):
        return f"{source}: {ACCESS_KEY} is not set; export it, or use another source"
    if not env.get(SECRET_KEY):
        return (
            f"{source}: {ACCESS_KEY} is set but {SECRET_KEY} is not; "
            "export both (and AWS_SESSION_TOKEN for temporary credentials)"
        )
    return None


def credentials_from_environ(env: Mapping[str, str], *, source: str) -> Credentials:
    """Credentials from the standard variables, as botocore reads them.

    The token is ``AWS_SESSION_TOKEN``, else the legacy ``AWS_SECURITY_TOKEN``;
    ``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601), when set, is the expiration.
    Raises :class:`EnvironmentProblem` (never quoting a value). Does not
    check whether the credentials already expired.
    """
    problem = missing_variable(env, source=source)
    if problem:
        raise EnvironmentProblem(problem, code="MissingVariable")
    expiration = None
    raw = env.get(EXPIRATION)
    if raw:
        try:
            expiration = parse_expiration(raw, what=EXPIRATION)
        except ValueError as exc:
            raise EnvironmentProblem(
                f"{source}: {exc}; use the form 2024-05-01T12:00:00Z or unset it",
                code="MalformedExpiration",
            ) from None
    return Credentials(
        access_key_id=env[ACCESS_KEY],
        secret_access_key=env[SECRET_KEY],
        session_token=next((env[v] for v in TOKEN_VARS if env.get(v)), None),
        expiration=expiration,
        source=source,
    )


class EnvironmentSource(SourceBase):
    """Reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``.

    ``environ`` is the mapping to read (default: :data:`os.environ`), read
    again at every ``fetch()`` so a process that updates its environment is
    followed, as botocore does. ``AWS_SECURITY_TOKEN`` is read when
    ``AWS_SESSION_TOKEN`` is not set. ``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601),
    when present, becomes the credentials' expiration; without it the
    credentials have none (they are treated as valid until the server rejects them).

    ``name`` defaults to ``"lambda"`` inside AWS Lambda
    (``AWS_LAMBDA_FUNCTION_NAME`` is set) and ``"env"`` elsewhere.
    Never blocks; holds no resources.
    """

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, name: str | None = None
    ) -> None:
        super().__init__()
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.name = name or ("lambda" if self._environ.get("AWS_LAMBDA_FUNCTION_NAME") else "env")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnvironmentSource:
        """A source reading ``environ`` (default :data:`os.environ`).

        Raises :class:`pool.ConfigurationError` when ``AWS_ACCESS_KEY_ID`` or
        ``AWS_SECRET_ACCESS_KEY`` is not set, naming the missing variable.
        """
        source = cls(environ=environ)
        problem = missing_variable(source._environ, source=source.name)
        if problem:
            raise ConfigurationError(problem)
        return source

    async def _fetch(self) -> Credentials:
        try:
            creds = credentials_from_environ(self._environ, source=self.name)
        except EnvironmentProblem as exc:
            raise CredentialFetchError(
                str(exc), source=self.name, retryable=False, code=exc.code
            ) from None
        return ensure_not_expired(creds, endpoint="the environment variables")
