"""Credentials from the EC2 instance metadata service, IMDSv2 only by default.

Flow, as the AWS SDKs do it: ``PUT /latest/api/token`` (session token with a
TTL, botocore asks 21600 s), then ``GET /latest/meta-data/iam/security-credentials/``
(the role name) and ``GET .../<role>`` (the credentials document), both with
``X-aws-ec2-metadata-token``. Unlike botocore the session token is kept until
shortly before its TTL ends (one request per fetch saved) and renewed at once
when IMDS answers 401. IMDSv1 (no token) is used only with ``allow_imdsv1=True``.

Also unlike botocore, near-expiry credentials are returned with their real
expiration: no "static stability" extension that later hands out expired keys.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import anyio

from pool._internal.redact import redact
from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources._http import (
    HttpClient,
    HttpResponse,
    HttpSettings,
    StatusHints,
    describe_url,
    status_error,
)
from pool.sources._http import with_retries as _with_retries
from pool.sources.base import SourceBase, credentials_from_document, safe_code

__all__ = ["InstanceMetadataSource"]

IPV4_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"
ENDPOINT_VAR = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
MODE_VAR = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
DISABLED_VAR = "AWS_EC2_METADATA_DISABLED"
TOKEN_PATH = "/latest/api/token"
ROLE_PATH = "/latest/meta-data/iam/security-credentials/"
# IAM's rule for role names (CreateRole: RoleName, pattern [\w+=,.@-]+, 1..64).
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_HOP_LIMIT_HINT = (
    "inside a container this is the classic IMDSv2 hop-limit symptom: the token response "
    "needs 2 network hops but the instance allows 1. Fix: aws ec2 "
    "modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 2 "
    "(or use the container's own credentials endpoint: ECS task role, EKS IRSA/Pod Identity)"
)

_STATUS_HINTS = StatusHints(
    by_status={
        401: "IMDSv1 requests are refused by this instance; do not set allow_imdsv1",
        404: "the role disappeared (instance profile changed?); retrying rediscovers it",
    },
    retry="IMDS is throttling or failing; retry later (IMDS answers 429 under load)",
    other="the metadata service refused the request",
)


class _TokenRejected(Exception):
    """IMDS answered 401 to a request carrying our session token."""


def metadata_disabled(environ: Mapping[str, str]) -> bool:
    """True when ``AWS_EC2_METADATA_DISABLED`` is ``true`` (any case), as botocore."""
    return environ.get(DISABLED_VAR, "false").strip().lower() == "true"


class InstanceMetadataSource(SourceBase):
    """IMDSv2 credentials of the instance's IAM role over one long-lived HTTP session.

    ``endpoint`` defaults to ``http://169.254.169.254``. ``role_name`` skips
    role discovery. ``token_ttl`` (1..21600 s) is asked for the session token,
    which is reused until ``min(60 s, ttl/10)`` before its TTL ends. The token
    is shared by concurrent fetches (guarded by a lock).
    """

    def __init__(
        self,
        *,
        endpoint: str = IPV4_ENDPOINT,
        role_name: str | None = None,
        token_ttl: int = 21600,
        allow_imdsv1: bool = False,
        name: str = "ec2",
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        attempts: int = 3,
        backoff: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"instance metadata endpoint {endpoint!r} is not an http(s) URL; "
                f"fix {ENDPOINT_VAR} (e.g. http://169.254.169.254)"
            )
        if not 1 <= token_ttl <= 21600:
            raise ConfigurationError("token_ttl must be between 1 and 21600 seconds")
        self.name = name
        self.endpoint = endpoint.rstrip("/")
        if role_name is not None and not _ROLE_NAME.fullmatch(role_name):
            raise ConfigurationError(
                f"role_name {role_name!r} is not an IAM role name "
                "(1-64 characters of letters, digits and +=,.@_-); fix role_name"
            )
        self.role_name = role_name
        self.token_ttl = token_ttl
        self.allow_imdsv1 = allow_imdsv1
        self._settings = HttpSettings(
            connect_timeout=connect_timeout, timeout=timeout, attempts=attempts, backoff=backoff
        )
        self.http = HttpClient(name, self._settings)
        self._token: str | None = None
        self._token_deadline = 0.0
        self._clock = clock
        self._token_lock = anyio.Lock()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> InstanceMetadataSource:
        """A source configured from the standard variables (default :data:`os.environ`).

        ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` wins over
        ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`` (``IPv4``/``IPv6``).
        Raises :class:`pool.ConfigurationError` when ``AWS_EC2_METADATA_DISABLED``
        is true or the mode is unknown. ``options`` are constructor keywords.
        """
        env = os.environ if environ is None else environ
        if metadata_disabled(env):
            raise ConfigurationError(
                f"ec2: instance metadata is disabled by {DISABLED_VAR}=true; unset it to use IMDS"
            )
        mode = env.get(MODE_VAR, "IPv4").strip().lower()
        if mode not in ("ipv4", "ipv6"):
            raise ConfigurationError(f"ec2: {MODE_VAR} must be IPv4 or IPv6")
        endpoint = env.get(ENDPOINT_VAR) or (IPV6_ENDPOINT if mode == "ipv6" else IPV4_ENDPOINT)
        return cls(endpoint=endpoint, **options)

    def _where(self, path: str) -> str:
        return describe_url(self.endpoint + path)

    async def _fetch(self) -> Credentials:
        return await _with_retries(self._attempt, settings=self._settings, source=self.name)

    async def _attempt(self) -> Credentials:
        token = await self._session_token()
        try:
            return await self._credentials(token)
        except _TokenRejected:
            # The token expired early or IMDS restarted: renew it once.
            self._forget_token(token)
            token = await self._session_token()
            try:
                return await self._credentials(token)
            except _TokenRejected:
                raise CredentialFetchError(
                    f"{self.name}: IMDS answered 401 to a freshly issued session token at "
                    f"{self._where(ROLE_PATH)}; the metadata service is misbehaving "
                    "(is a proxy or firewall rewriting the X-aws-ec2-metadata-token header?)",
                    source=self.name,
                    retryable=False,
                    status=401,
                    code="TokenRejected",
                ) from None

    async def _credentials(self, token: str | None) -> Credentials:
        role = self.role_name or await self._discover_role(token)
        path = ROLE_PATH + quote(role, safe="")
        resp = await self._get(path, token)
        if resp.status != 200:
            raise self._status_error(resp, path, "GET credentials")
        try:
            doc = json.loads(resp.body)
        except ValueError:
            raise CredentialFetchError(
                f"{self.name}: {self._where(path)} returned a body that is not JSON",
                source=self.name,
                retryable=False,
                status=200,
                code="MalformedResponse",
            ) from None
        if isinstance(doc, dict) and doc.get("Code", "Success") != "Success":
            code = safe_code(doc.get("Code")) or "Unknown"
            raise CredentialFetchError(
                f"{self.name}: IMDS reported Code={code} for role {role!r}; check that the "
                "role trusts ec2.amazonaws.com and is attached through an instance profile",
                source=self.name,
                retryable=False,
                status=200,
                code=code,
            )
        return credentials_from_document(doc, source=self.name, endpoint=self._where(path))

    async def _discover_role(self, token: str | None) -> str:
        resp = await self._get(ROLE_PATH, token)
        if resp.status == 404:
            raise CredentialFetchError(
                f"{self.name}: {self._where(ROLE_PATH)} returned HTTP 404: no IAM role is "
                "attached to this instance; attach one (aws ec2 associate-iam-instance-profile)",
                source=self.name,
                retryable=False,
                status=404,
                code="NoInstanceProfile",
            )
        if resp.status != 200:
            raise self._status_error(resp, ROLE_PATH, "GET role")
        lines = resp.body.decode("utf-8", "replace").split()
        if not lines:
            raise CredentialFetchError(
                f"{self.name}: {self._where(ROLE_PATH)} listed no role; attach an IAM role "
                "to the instance profile",
                source=self.name,
                retryable=False,
                status=200,
                code="NoInstanceProfile",
            )
        role = lines[0]
        if not _ROLE_NAME.fullmatch(role):
            # Not echoed whole: a garbage body is not ours to print (first chars only).
            shown = redact(role[:40], limit=60)
            raise CredentialFetchError(
                f"{self.name}: {self._where(ROLE_PATH)} listed {shown!r}, which is not an IAM "
                "role name (1-64 characters of letters, digits and +=,.@_-); is the endpoint "
                f"really instance metadata? fix {ENDPOINT_VAR}",
                source=self.name,
                retryable=False,
                status=200,
                code="MalformedResponse",
            )
        return role

    async def _get(self, path: str, token: str | None) -> HttpResponse:
        headers = {"X-aws-ec2-metadata-token": token} if token else {}
        resp = await self.http.request("GET", self.endpoint + path, headers=headers, what="GET")
        if resp.status == 401 and token:
            raise _TokenRejected
        return resp

    def _status_error(self, resp: HttpResponse, path: str, what: str) -> CredentialFetchError:
        # A discovered role that vanished is rediscovered by the next attempt.
        rediscover = resp.status == 404 and self.role_name is None
        return status_error(
            self.name,
            f"{what} {self._where(path)}",
            resp.status,
            _STATUS_HINTS,
            retryable=rediscover,
        )

    def _forget_token(self, token: str | None) -> None:
        if self._token == token:
            self._token = None

    async def _session_token(self) -> str | None:
        """The cached session token, or a new one; ``None`` means IMDSv1 fallback."""
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_deadline:
                return self._token
            requested = self._clock()
            token = await self._put_token()
            if token is not None:
                margin = min(60.0, self.token_ttl / 10)
                self._token, self._token_deadline = token, requested + self.token_ttl - margin
            return token

    async def _put_token(self) -> str | None:
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(self.token_ttl)}
        url = self.endpoint + TOKEN_PATH
        try:
            resp = await self.http.request("PUT", url, headers=headers, what="token PUT")
        except CredentialFetchError as exc:
            if exc.code != "Timeout":
                raise
            if self.allow_imdsv1:
                return None  # as botocore: a PUT timeout falls back to IMDSv1
            raise CredentialFetchError(
                f"{self.name}: IMDSv2 token PUT to {self._where(TOKEN_PATH)} timed out after "
                f"{self._settings.timeout:g} s; {_HOP_LIMIT_HINT}",
                source=self.name,
                retryable=True,
                code="TokenTimeout",
            ) from exc
        if resp.status == 200:
            token = resp.body.decode("ascii", "replace").strip()
            if token and "\r" not in token and "\n" not in token:
                return token
            raise CredentialFetchError(
                f"{self.name}: token PUT to {self._where(TOKEN_PATH)} returned no usable token",
                source=self.name,
                retryable=False,
                status=200,
                code="MalformedResponse",
            )
        if resp.status in (403, 404, 405) and self.allow_imdsv1:
            return None
        if resp.status in (403, 404, 405):
            raise CredentialFetchError(
                f"{self.name}: token PUT to {self._where(TOKEN_PATH)} returned HTTP "
                f"{resp.status}: IMDSv2 is unavailable (metadata endpoint disabled?). Fix: aws "
                "ec2 modify-instance-metadata-options --http-endpoint enabled, or pass "
                "allow_imdsv1=True to fall back to IMDSv1",
                source=self.name,
                retryable=False,
                status=resp.status,
                code=f"HTTP{resp.status}",
            )
        raise self._status_error(resp, TOKEN_PATH, "token PUT")

    def _holds_resources(self) -> bool:
        return self.http.session is not None

    async def _aclose(self) -> None:
        self._token = None
        await self.http.aclose()
