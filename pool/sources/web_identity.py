"""Credentials from STS ``AssumeRoleWithWebIdentity`` (EKS IRSA, any OIDC token file).

On EKS with IAM Roles for Service Accounts the pod has
``AWS_WEB_IDENTITY_TOKEN_FILE`` (a projected service-account token kubelet
rotates), ``AWS_ROLE_ARN`` and usually ``AWS_ROLE_SESSION_NAME``. The token
file is re-read at every fetch in a worker thread. The call is unsigned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pool.credentials import Credentials
from pool.errors import ConfigurationError
from pool.sources._sts_endpoint import StsEndpoint
from pool.sources._sts_source import (
    StsSourceBase,
    credentials_from_sts,
    endpoint_options,
    make_endpoint,
)
from pool.sources.arn import check_role_arn
from pool.sources.base import read_token_file

__all__ = ["WebIdentitySource"]

TOKEN_FILE = "AWS_WEB_IDENTITY_TOKEN_FILE"
ROLE_ARN = "AWS_ROLE_ARN"
SESSION_NAME = "AWS_ROLE_SESSION_NAME"
_TOKEN_HINT = (
    "check the projected service account token volume (EKS IRSA: the service account's "
    f"eks.amazonaws.com/role-arn annotation) or {TOKEN_FILE}"
)


class WebIdentitySource(StsSourceBase):
    """Exchanges a web identity token file for role credentials through STS.

    One HTTP session is opened on the first fetch and reused until
    ``aclose()``; the call is unsigned. ``session_name`` defaults to
    ``mongodb-aws-pool-<unix time>`` (generated once). ``duration_seconds``
    (900..43200) is sent only when given; STS then defaults to 3600 s.
    STS is the SDKs' regional endpoint for ``region``; ``endpoint_url`` overrides
    it (``AWS_ENDPOINT_URL_STS``), a resolved ``endpoint`` (``from_env`` passes
    one: FIPS, dual-stack, legacy global) overrides both.
    Retryable failures are retried ``attempts`` times in total per fetch.
    ``name`` defaults to ``"eks_irsa"`` on Kubernetes and ``"web_identity"`` elsewhere.
    """

    def __init__(
        self,
        *,
        role_arn: str,
        token_file: str | os.PathLike[str],
        session_name: str | None = None,
        duration_seconds: int | None = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        endpoint: StsEndpoint | None = None,
        name: str | None = None,
        connect_timeout: float = 1.0,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.1,
    ) -> None:
        super().__init__()
        self.token_file = os.fspath(token_file)
        self.name = name or (
            "eks_irsa" if "eks.amazonaws.com" in self.token_file else "web_identity"
        )
        self._setup_sts(
            role_arn=role_arn,
            role_var=ROLE_ARN,
            duration_seconds=duration_seconds,
            session_name=session_name,
            endpoint=make_endpoint(region, endpoint_url, endpoint),
            signed=False,
            connect_timeout=connect_timeout,
            timeout=timeout,
            attempts=attempts,
            backoff=backoff,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> WebIdentitySource:
        """A source configured from the standard variables (default :data:`os.environ`).

        Reads ``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_ROLE_ARN``,
        ``AWS_ROLE_SESSION_NAME``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` and
        ``AWS_ENDPOINT_URL_STS``/``AWS_ENDPOINT_URL``. ``options`` are
        constructor keywords and win. Raises :class:`pool.ConfigurationError`
        naming a missing variable.
        """
        env = os.environ if environ is None else environ
        token_file, role_arn = env.get(TOKEN_FILE), env.get(ROLE_ARN)
        if not token_file:
            raise ConfigurationError(f"web identity: {TOKEN_FILE} is not set")
        if not role_arn:
            raise ConfigurationError(
                f"web identity: {TOKEN_FILE} is set but {ROLE_ARN} is not; set the role to "
                "assume (EKS IRSA: annotate the service account with eks.amazonaws.com/role-arn)"
            )
        if "role_arn" not in options:
            check_role_arn(role_arn, source="web identity", origin=ROLE_ARN)
        kwargs: dict[str, Any] = {
            "role_arn": role_arn,
            "token_file": token_file,
            "session_name": env.get(SESSION_NAME) or None,
            "name": "eks_irsa" if env.get("KUBERNETES_SERVICE_HOST") else None,
            **endpoint_options(env, options),
        }
        kwargs.update(options)
        return cls(**kwargs)

    async def _fetch(self) -> Credentials:
        # Read once per fetch (kubelet rotates the file), not once per retry.
        token = (
            await read_token_file(
                self.token_file,
                source=self.name,
                what="web identity token file",
                hint=_TOKEN_HINT,
                read_timeout=self._settings.timeout,
            )
        ).strip()
        params: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "WebIdentityToken": token,
        }
        if self.duration_seconds is not None:
            params["DurationSeconds"] = self.duration_seconds

        async def attempt() -> Credentials:
            response = await self.sts.call(
                "AssumeRoleWithWebIdentity", credentials=None, secrets=(token,), **params
            )
            return credentials_from_sts(response, source=self.name, where=self.sts.where)

        return await self._with_retries(attempt)
