"""Credentials from STS ``AssumeRole`` signed with another source's (role chaining).

Typical use: the service runs as one role (ECS task role, EC2 instance
profile) and reaches an Atlas project through a role in another account::

    base = ContainerSource.from_env()
    async with AssumeRoleSource(base, role_arn="arn:aws:iam::222233334444:role/atlas",
                                external_id="…") as source:
        creds = await source.fetch()
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pool._internal.redact import redact
from pool._internal.scrub import register_secret
from pool.credentials import Credentials
from pool.errors import CredentialFetchError
from pool.sources._sts_endpoint import StsEndpoint
from pool.sources._sts_source import (
    StsSourceBase,
    credentials_from_sts,
    endpoint_options,
    make_endpoint,
)
from pool.sources.arn import check_role_arn
from pool.sources.base import CredentialSource, aclose_source

__all__ = ["AssumeRoleSource"]


class AssumeRoleSource(StsSourceBase):
    """Assumes ``role_arn`` with credentials from ``base`` at every fetch.

    ``base`` is any :class:`CredentialSource`; it is asked at every fetch, so a
    rotating base is followed. To avoid one base lookup per fetch, pass a
    :class:`pool.CredentialCache` (anything with ``async get()`` is used
    through ``get()``). ``owns_base`` (default True) closes ``base`` in
    ``aclose()``; pass False for a base shared with something else.

    One HTTP session is opened on the first fetch and reused; each call is
    SigV4-signed with the base's current credentials. Role chaining
    caps ``duration_seconds`` at 3600 on AWS's side.
    """

    def __init__(
        self,
        base: CredentialSource | Any,
        *,
        role_arn: str,
        external_id: str | None = None,
        session_name: str | None = None,
        duration_seconds: int | None = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        endpoint: StsEndpoint | None = None,
        owns_base: bool = True,
        name: str = "assume_role",
        connect_timeout: float = 1.0,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.1,
    ) -> None:
        super().__init__()
        getter = getattr(base, "get", None) if not hasattr(base, "fetch") else base.fetch
        if getter is None:
            raise TypeError("base must have 'async def fetch()' (a source) or 'async def get()'")
        self._get_base: Callable[[], Awaitable[Credentials]] = getter
        self.base = base
        self.owns_base = owns_base
        self.name = name
        self.external_id = external_id
        register_secret(external_id)  # botocore.endpoint logs request parameters
        self._setup_sts(
            role_arn=role_arn,
            role_var="role_arn",
            duration_seconds=duration_seconds,
            session_name=session_name,
            endpoint=make_endpoint(region, endpoint_url, endpoint),
            signed=True,
            connect_timeout=connect_timeout,
            timeout=timeout,
            attempts=attempts,
            backoff=backoff,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        role_arn: str,
        base: CredentialSource | Any | None = None,
        **options: Any,
    ) -> AssumeRoleSource:
        """Assume ``role_arn`` on top of ``base`` (default: :func:`from_environment`).

        Region and endpoint come from ``AWS_REGION``/``AWS_DEFAULT_REGION`` and
        ``AWS_ENDPOINT_URL_STS``/``AWS_ENDPOINT_URL``; ``options`` are
        constructor keywords and win.
        """
        from pool.sources.detect import from_environment

        check_role_arn(role_arn, source="assume_role")  # before a base source is made
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = endpoint_options(env, options)
        kwargs.update(options)
        return cls(base if base is not None else from_environment(env), role_arn=role_arn, **kwargs)

    async def _base_credentials(self) -> Credentials:
        try:
            return await self._get_base()
        except CredentialFetchError as exc:
            # Keep the base's classification, but say which chain failed. The base may
            # be a user's source whose message quotes third-party text: redacted.
            raise CredentialFetchError(
                f"{self.name}: the base source failed, so {self.role_arn} cannot be assumed: "
                f"{redact(str(exc))}",
                source=self.name,
                retryable=exc.retryable,
                status=exc.status,
                code=exc.code,
            ) from exc

    async def _fetch(self) -> Credentials:
        params: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name}
        if self.external_id is not None:
            params["ExternalId"] = self.external_id
        if self.duration_seconds is not None:
            params["DurationSeconds"] = self.duration_seconds

        # Asked once per fetch, outside the retry loop: the base retries on its own,
        # and nesting both loops would multiply the attempts.
        base = await self._base_credentials()

        async def attempt() -> Credentials:
            secrets = (base.secret_access_key, base.session_token or "")
            response = await self.sts.call(
                "AssumeRole", credentials=base, secrets=secrets, **params
            )
            return credentials_from_sts(response, source=self.name, where=self.sts.where)

        return await self._with_retries(attempt)

    async def _aclose(self) -> None:
        try:
            await super()._aclose()
        finally:
            if self.owns_base:
                await aclose_source(self.base)
