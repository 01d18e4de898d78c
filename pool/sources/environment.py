"""Credentials from environment variables (AWS Lambda, CI, local shells).

Lambda puts the function role's temporary credentials in ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``. This module imports
neither boto3, botocore nor aiobotocore, so the Lambda cold-start path stays
cheap; and it does no I/O at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..credentials import Credentials
from ..errors import ConfigurationError, CredentialFetchError
from .base import SourceBase, ensure_not_expired, parse_expiration

__all__ = ["EnvironmentSource"]

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
# AWS_SESSION_TOKEN is the standard name; AWS_SECURITY_TOKEN is the legacy one
# botocore still reads second.
TOKEN_VARS = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
EXPIRATION = "AWS_CREDENTIAL_EXPIRATION"


class EnvironmentSource(SourceBase):
    """Reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``.

    ``environ`` is the mapping to read (default: :data:`os.environ`), read
    again at every ``fetch()`` so a process that updates its environment is
    followed, as botocore does. ``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601), when
    present, becomes the credentials' expiration; without it the credentials
    have none (they are treated as valid until the server rejects them).

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
        problem = source._missing()
        if problem:
            raise ConfigurationError(problem)
        return source

    def _missing(self) -> str | None:
        env = self._environ
        if not env.get(ACCESS_KEY):
            return f"{self.name}: {ACCESS_KEY} is not set; export it, or use another source"
        if not env.get(SECRET_KEY):
            return (
                f"{self.name}: {ACCESS_KEY} is set but {SECRET_KEY} is not; "
                "export both (and AWS_SESSION_TOKEN for temporary credentials)"
            )
        return None

    async def _fetch(self) -> Credentials:
        problem = self._missing()
        if problem:
            raise CredentialFetchError(
                problem, source=self.name, retryable=False, code="MissingVariable"
            )
        env = self._environ
        token = next((env[v] for v in TOKEN_VARS if env.get(v)), None)
        expiration = None
        raw = env.get(EXPIRATION)
        if raw:
            try:
                expiration = parse_expiration(raw, what=EXPIRATION)
            except ValueError as exc:
                raise CredentialFetchError(
                    f"{self.name}: {exc}; use the form 2024-05-01T12:00:00Z or unset it",
                    source=self.name,
                    retryable=False,
                    code="MalformedExpiration",
                ) from None
        creds = Credentials(
            access_key_id=env[ACCESS_KEY],
            secret_access_key=env[SECRET_KEY],
            session_token=token,
            expiration=expiration,
            source=self.name,
        )
        return ensure_not_expired(creds, endpoint="the environment variables")
