"""Every AWS credential endpoint at once, behind one authority: the group the CLI and tests use.

:class:`AwsStandIns` starts, on loopback: STS, the IAM Identity Center (SSO)
portal, IMDSv2, an ECS container
endpoint (with an ``Authorization`` token, as ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
supplies) and an EKS Pod Identity endpoint (with a token file, as
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` supplies). It writes the Pod
Identity token and an IRSA web identity token into a temporary directory it
owns and removes on ``aclose()``. :meth:`AwsStandIns.env_for` gives the
standard variables that point real software at each environment.

Every endpoint serves the same role (:attr:`AwsStandIns.role_arn`), so one
database user mapping covers all environments. The servers run on the loop
that entered the group; use :mod:`pool.standins.threaded` when the client
under test blocks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread

from pool._internal.resource import AsyncResource
from pool._internal.scrub import register_secret
from pool.standins.authority import CredentialAuthority, RoleVendor, aws_time
from pool.standins.container import ContainerStandIn
from pool.standins.faults import FaultInjector
from pool.standins.imds import ImdsStandIn
from pool.standins.sso import SsoStandIn
from pool.standins.sts import StsStandIn
from pool.standins.throttle import Throttle

__all__ = ["ENVIRONMENTS", "AwsStandIns"]

ENVIRONMENTS = ("lambda", "ecs", "ec2", "eks_irsa", "eks_pod_identity")
POD_IDENTITY_PATH = "/v1/credentials"  # what the EKS Pod Identity agent serves


def _write_secret(path: Path, text: str) -> None:
    # 0600 like a projected token; no trailing newline: botocore sends the
    # file verbatim and refuses CR/LF in the Authorization header.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class AwsStandIns(AsyncResource):
    """STS, IMDS, ECS and EKS Pod Identity stand-ins sharing one authority.

    ``lifetime`` is the lifetime of credentials the endpoints mint (default:
    the authority's ``default_lifetime``); ``refresh_margin`` defaults to
    ``min(300, lifetime / 3)``, so short lifetimes still rotate. When no
    authority is given, one is made with ``default_lifetime=lifetime`` and
    ``min_duration=min(900, lifetime)``. Async context manager; ``aclose()``
    is idempotent and removes the token directory.
    """

    def __init__(
        self,
        authority: CredentialAuthority | None = None,
        *,
        lifetime: float | None = None,
        refresh_margin: float | None = None,
        faults: FaultInjector | None = None,
        imdsv1: bool = False,
        throttle: Throttle | None = None,
    ) -> None:
        if authority is None:
            life = 3600.0 if lifetime is None else lifetime
            authority = CredentialAuthority(default_lifetime=life, min_duration=min(900.0, life))
        self.authority = authority
        self.lifetime = authority.default_lifetime if lifetime is None else lifetime
        margin = min(300.0, self.lifetime / 3) if refresh_margin is None else refresh_margin
        self.refresh_margin = margin
        self.faults = faults if faults is not None else FaultInjector()
        # One throttle for all endpoints: rate limits per endpoint, and the
        # per-second call counters the benchmarks read.
        self.throttle = throttle if throttle is not None else Throttle()
        self.role_arn = authority.default_role_arn
        self.region = authority.region

        def vendor(session: str) -> RoleVendor:
            return authority.role_vendor(
                self.role_arn, refresh_margin=margin, lifetime=self.lifetime, session_name=session
            )

        self.sts = StsStandIn(authority, faults=self.faults, throttle=self.throttle)
        self.sso = SsoStandIn(authority, lifetime=self.lifetime, faults=self.faults)
        self.imds = ImdsStandIn(
            authority,
            vendor=vendor("i-standin"),
            faults=self.faults,
            imdsv1=imdsv1,
            throttle=self.throttle,
        )
        self.ecs_auth_token = secrets.token_urlsafe(32)
        register_secret(self.ecs_auth_token)
        self.ecs = ContainerStandIn(
            authority,
            vendor=vendor("ecs-task"),
            auth_token=self.ecs_auth_token,
            faults=self.faults,
            throttle=self.throttle,
        )
        self.pod_identity_token = secrets.token_urlsafe(48)
        register_secret(self.pod_identity_token)
        self.pod_identity = ContainerStandIn(
            authority,
            vendor=vendor("eks-pod-identity"),
            path=POD_IDENTITY_PATH,
            auth_token=self.pod_identity_token,
            include_account_id=True,
            faults=self.faults,
            throttle=self.throttle,
            endpoint="eks_pod_identity",
        )
        self.web_identity_token = ""
        self._dir: Path | None = None
        self._closed = False

    def __repr__(self) -> str:
        # Tokens are secrets: only endpoints are shown.
        urls = {s.endpoint: s._url for s in self._servers()}
        return f"<AwsStandIns {urls} role_arn={self.role_arn!r}>"

    def _servers(
        self,
    ) -> tuple[StsStandIn, ImdsStandIn, ContainerStandIn, ContainerStandIn, SsoStandIn]:
        return (self.sts, self.imds, self.ecs, self.pod_identity, self.sso)

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> None:
        """Start every endpoint on ``host`` (free ports) and write the token files."""
        try:
            self._dir = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, "", "pool-aws-"))
            await self.rotate_web_identity_token()
            await anyio.to_thread.run_sync(
                _write_secret, self.pod_identity_token_file, self.pod_identity_token
            )
            for server in self._servers():
                await server.start(host)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop every endpoint and delete the token directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers():
            await server.aclose()
        if self._dir is not None:
            await anyio.to_thread.run_sync(shutil.rmtree, self._dir, True)

    # -- tokens ----------------------------------------------------------------

    @property
    def token_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("AwsStandIns is not started; call start() first")
        return self._dir

    @property
    def web_identity_token_file(self) -> Path:
        # The path EKS projects the token at, so software that tells EKS IRSA
        # from other web identity by the path sees what it would see on EKS.
        return self.token_dir / "eks.amazonaws.com" / "serviceaccount" / "token"

    @property
    def pod_identity_token_file(self) -> Path:
        return self.token_dir / "eks-pod-identity-token"

    async def rotate_web_identity_token(self, lifetime: float = 86400.0) -> str:
        """Issue a new IRSA token and rewrite the token file, as the kubelet does."""
        token = self.authority.issue_web_identity_token(lifetime=lifetime)
        await anyio.to_thread.run_sync(
            lambda: self.web_identity_token_file.parent.mkdir(parents=True, exist_ok=True)
        )
        await anyio.to_thread.run_sync(_write_secret, self.web_identity_token_file, token)
        self.web_identity_token = token
        return token

    async def rotate_pod_identity_token(self) -> str:
        """Replace the Pod Identity token in the file and in the endpoint's check."""
        token = secrets.token_urlsafe(48)
        register_secret(token)
        await anyio.to_thread.run_sync(_write_secret, self.pod_identity_token_file, token)
        self.pod_identity_token = token
        self.pod_identity.auth_token = token
        return token

    # -- what users export -------------------------------------------------------

    @property
    def sts_url(self) -> str:
        return self.sts.url

    @property
    def sso_url(self) -> str:
        """The IAM Identity Center portal (``AWS_ENDPOINT_URL_SSO``)."""
        return self.sso.url

    @property
    def imds_url(self) -> str:
        return self.imds.url

    @property
    def ecs_full_uri(self) -> str:
        return self.ecs.full_uri

    @property
    def pod_identity_full_uri(self) -> str:
        return self.pod_identity.full_uri

    def env_for(self, environment: str) -> dict[str, str]:
        """The standard variables a process in ``environment`` would see.

        ``"lambda"`` mints a fresh credential set on every call. Raises
        ``ValueError`` for an unknown environment (see :data:`ENVIRONMENTS`).
        """
        # Every block names the stand-ins' STS: anything that calls STS with these
        # credentials (``check``'s identity step, role chaining, boto3) stays on
        # loopback instead of reaching sts.<region>.amazonaws.com.
        region = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_STS": self.sts_url,
        }
        if environment == "lambda":
            creds = self.authority.mint(self.role_arn, "lambda-function", self.lifetime)
            assert creds.session_token is not None and creds.expiration is not None
            return {
                "AWS_ACCESS_KEY_ID": creds.access_key_id,
                "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
                "AWS_SESSION_TOKEN": creds.session_token,
                "AWS_CREDENTIAL_EXPIRATION": aws_time(creds.expiration),
                **region,
            }
        if environment == "ecs":
            return {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.ecs_full_uri,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.ecs_auth_token,
                **region,
            }
        if environment == "eks_pod_identity":
            return {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.pod_identity_full_uri,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(self.pod_identity_token_file),
                **region,
            }
        if environment == "ec2":
            # A real instance exports nothing but the region is commonly set; the endpoint
            # override replaces http://169.254.169.254/.
            return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds_url + "/", **region}
        if environment == "eks_irsa":
            return {
                "AWS_WEB_IDENTITY_TOKEN_FILE": str(self.web_identity_token_file),
                "AWS_ROLE_ARN": self.role_arn,
                "AWS_ROLE_SESSION_NAME": "eks-irsa",
                **region,
            }
        raise ValueError(
            f"unknown environment {environment!r}; expected one of {', '.join(ENVIRONMENTS)}"
        )

    def summary(self) -> dict[str, Any]:
        """The AWS part of ``python -m pool emulate --json`` (no ``mongodb_uri``)."""
        return {
            "sts_endpoint": self.sts_url,
            "sso_endpoint": self.sso_url,
            "imds_endpoint": self.imds_url,
            "ecs_full_uri": self.ecs_full_uri,
            "ecs_auth_token": self.ecs_auth_token,
            "pod_identity_full_uri": self.pod_identity_full_uri,
            "pod_identity_token_file": str(self.pod_identity_token_file),
            "web_identity_token_file": str(self.web_identity_token_file),
            "role_arn": self.role_arn,
            "region": self.region,
            "lambda_env": self.env_for("lambda"),
        }
