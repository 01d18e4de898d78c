"""Fixed credentials given in code (tests, long-term keys, credentials from elsewhere)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime

from pool.credentials import Credentials
from pool.errors import ConfigurationError
from pool.sources.base import SourceBase, ensure_not_expired
from pool.sources.environment import EnvironmentProblem, credentials_from_environ

__all__ = ["StaticSource"]


class StaticSource(SourceBase):
    """Always returns the same keys.

    The credentials are validated at construction (non-empty strings, aware
    ``expiration``). Each ``fetch()`` returns a fresh :class:`pool.Credentials`
    (so its monotonic deadline is measured from that fetch) and raises a
    non-retryable :class:`pool.CredentialFetchError` once ``expiration`` has
    passed. Never blocks; holds no resources.
    """

    def __init__(
        self,
        *,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: datetime | None = None,
        name: str = "static",
    ) -> None:
        super().__init__()
        self.name = name
        # Validates the values now, so a typo fails at construction.
        Credentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expiration=expiration,
            source=name,
        )
        self._values = (access_key_id, secret_access_key, session_token, expiration)

    @classmethod
    def of(cls, credentials: Credentials, *, name: str | None = None) -> StaticSource:
        """A source returning copies of ``credentials``."""
        return cls(
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            expiration=credentials.expiration,
            name=name or credentials.source or "static",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StaticSource:
        """A snapshot of the variables :class:`EnvironmentSource` reads, parsed the same way.

        Unlike :class:`EnvironmentSource`, later changes to the environment are
        not followed. Raises :class:`pool.ConfigurationError` naming a missing
        or malformed variable.
        """
        try:
            creds = credentials_from_environ(
                os.environ if environ is None else environ, source="static"
            )
        except EnvironmentProblem as exc:
            raise ConfigurationError(str(exc)) from None
        return cls.of(creds)

    async def _fetch(self) -> Credentials:
        key, secret, token, expiration = self._values
        creds = Credentials(
            access_key_id=key,
            secret_access_key=secret,
            session_token=token,
            expiration=expiration,
            source=self.name,
        )
        return ensure_not_expired(creds, endpoint="the static configuration")
