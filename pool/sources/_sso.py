"""IAM Identity Center (SSO) profiles: the token ``aws sso login`` cached, traded for role keys.

``aws sso login --profile X`` leaves an access token in
``~/.aws/sso/cache/<sha1>.json`` (the SHA-1 of the ``sso_session`` name, or of
``sso_start_url`` for legacy profiles: botocore 1.40.61 ``SSOTokenLoader``'s
key). Each fetch re-reads it (off the loop: a later login replaces it) and
calls the portal's ``GetRoleCredentials``, ``GET /federation/credentials?
role_name=R&account_id=A`` with the token in ``x-amz-sso_bearer_token``, at
``https://portal.sso.<sso_region>.amazonaws.com`` (``AWS_ENDPOINT_URL_SSO``
overrides it). The answer's ``expiration`` (epoch milliseconds) is exact.

An expired or refused token is a non-retryable error telling the user to run
``aws sso login --profile X``. The token is never refreshed here (botocore
refreshes ``sso-session`` tokens through SSO OIDC ``CreateToken``; the AWS CLI
does it at its next command): run a login when the error says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import anyio

from pool._internal.scrub import register_secret
from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources._http import (
    HttpClient,
    HttpSettings,
    StatusHints,
    proxy_for,
    status_error,
    with_retries,
)
from pool.sources.base import SourceBase, ensure_not_expired, parse_expiration, safe_code

__all__ = ["SsoSource", "sso_cache_path"]

TOKEN_HEADER = "x-amz-sso_bearer_token"


def sso_cache_path(key: str, environ: Mapping[str, str]) -> str:
    """Where ``aws sso login`` caches the token for ``key`` (session name or start URL)."""
    home = environ.get("HOME") or environ.get("USERPROFILE") or os.path.expanduser("~")
    digest = hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    return os.path.join(home, ".aws", "sso", "cache", f"{digest}.json")


class SsoSource(SourceBase):
    """Role credentials from IAM Identity Center for one profile's account and role."""

    def __init__(
        self,
        *,
        profile: str,
        settings: Mapping[str, str],
        sessions: Mapping[str, Mapping[str, str]],
        environ: Mapping[str, str],
        name: str = "sso",
        http: HttpSettings | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.profile = profile
        session_name = settings.get("sso_session")
        merged = dict(settings)
        if session_name:
            if session_name not in sessions:
                raise ConfigurationError(
                    f"{name}: profile {profile!r} names sso_session {session_name!r}, which has "
                    f"no [sso-session {session_name}] section in the config file"
                )
            merged = {**sessions[session_name], **settings}
        missing = [
            k
            for k in ("sso_start_url", "sso_region", "sso_account_id", "sso_role_name")
            if not merged.get(k)
        ]
        if missing:
            raise ConfigurationError(
                f"{name}: SSO profile {profile!r} lacks {', '.join(missing)}; run "
                f"'aws configure sso --profile {profile}'"
            )
        self.account_id, self.role_name = merged["sso_account_id"], merged["sso_role_name"]
        self.region = merged["sso_region"]
        self.cache_file = sso_cache_path(session_name or merged["sso_start_url"], environ)
        base = (
            environ.get("AWS_ENDPOINT_URL_SSO")
            or environ.get("AWS_ENDPOINT_URL")
            or f"https://portal.sso.{self.region}.amazonaws.com"
        )
        query = urlencode({"role_name": self.role_name, "account_id": self.account_id})
        self.url = f"{base.rstrip('/')}/federation/credentials?{query}"
        self.proxy = proxy_for(self.url, {**os.environ, **environ})
        self._settings = http or HttpSettings(timeout=5.0)
        self.http = HttpClient(name, self._settings)
        self._login = f"aws sso login --profile {profile}"

    def _token_error(self, why: str, code: str) -> CredentialFetchError:
        return CredentialFetchError(
            f"{self.name}: the IAM Identity Center token for profile {self.profile!r} {why}; "
            f"run '{self._login}'",
            source=self.name,
            retryable=False,
            code=code,
        )

    async def _token(self) -> str:
        try:
            raw = await anyio.Path(self.cache_file).read_bytes()
        except OSError:
            raise self._token_error(
                f"is not cached ({self.cache_file})", "SsoNotLoggedIn"
            ) from None
        try:
            doc = json.loads(raw)
            token, expires = doc["accessToken"], doc["expiresAt"]
            if not isinstance(token, str) or not token:
                raise ValueError
            register_secret(token)  # a bearer token: scrubbed from every log record
            expiry = parse_expiration(expires, what="expiresAt")
        except (ValueError, KeyError, TypeError):
            raise self._token_error(
                f"cache {self.cache_file} is unreadable", "SsoTokenBad"
            ) from None
        if expiry <= datetime.now(UTC):
            raise self._token_error(f"expired at {expiry:%Y-%m-%d %H:%M:%S}Z", "SsoTokenExpired")
        return token

    async def _fetch(self) -> Credentials:
        token = await self._token()
        return await with_retries(lambda: self._attempt(token), settings=self._settings,
                                  source=self.name)  # fmt: skip

    async def _attempt(self, token: str) -> Credentials:
        what = "SSO GetRoleCredentials"
        resp = await self.http.request(
            "GET", self.url, headers={TOKEN_HEADER: token}, what=what, proxy=self.proxy
        )
        if resp.status == 401:
            raise self._token_error("was refused (expired or revoked)", "UnauthorizedException")
        if resp.status != 200:
            code = safe_code(resp.headers.get("x-amzn-ErrorType", "").split(":")[0]) or None
            hints = StatusHints(
                {
                    403: f"role {self.role_name!r} in account {self.account_id} is not assigned to "
                    "this user in IAM Identity Center",
                    404: f"no role {self.role_name!r} in account {self.account_id}; check "
                    "sso_role_name and sso_account_id",
                },
                "retry later",
                "check the profile's SSO settings",
            )
            raise status_error(self.name, what, resp.status, hints, code=code)
        return self._parse(resp.body)

    def _parse(self, body: bytes) -> Credentials:
        try:
            doc = json.loads(body)["roleCredentials"]
            expiration = datetime.fromtimestamp(int(doc["expiration"]) / 1000, UTC)
            creds = Credentials(
                access_key_id=doc["accessKeyId"],
                secret_access_key=doc["secretAccessKey"],
                session_token=doc["sessionToken"],
                expiration=expiration,
                source=self.name,
            )
        except (ValueError, KeyError, TypeError):
            raise CredentialFetchError(
                f"{self.name}: SSO GetRoleCredentials answered without roleCredentials; is "
                "AWS_ENDPOINT_URL_SSO the IAM Identity Center portal?",
                source=self.name,
                retryable=False,
                code="MalformedResponse",
            ) from None
        return ensure_not_expired(creds, endpoint="SSO GetRoleCredentials")

    def _holds_resources(self) -> bool:
        return self.http.session is not None

    async def _aclose(self) -> None:
        await self.http.aclose()
