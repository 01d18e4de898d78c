"""IAM Identity Center (SSO) profiles: the token ``aws sso login`` cached, traded for role keys.

``aws sso login --profile X`` leaves an access token in
``~/.aws/sso/cache/<sha1>.json`` (the SHA-1 of the ``sso_session`` name, or of
``sso_start_url`` for legacy profiles: botocore's ``SSOTokenLoader`` key).
Each fetch re-reads it (off the loop: a later login replaces it) and calls the
portal's ``GetRoleCredentials``, ``GET /federation/credentials?
role_name=R&account_id=A`` with the token in ``x-amz-sso_bearer_token``, at
``https://portal.sso.<sso_region>.amazonaws.com`` (``AWS_ENDPOINT_URL_SSO``
overrides it). The answer's ``expiration`` (epoch milliseconds) is exact.

``sso-session`` profiles refresh the token as botocore 1.43.117's
``SSOTokenProvider`` does (:mod:`pool.sources._sso_oidc`): with less than 15
minutes left (or expired) and a client registration plus refresh token in the
cache, SSO OIDC ``CreateToken`` issues a new one, written back to the cache
file atomically (mode 0600), so a developer's session lasts as long as the
refresh token and the registration. Concurrent fetches share one refresh
(a caller that gives up does not cancel it for the others), and a refresh is
tried at most once a minute while the token has more than a minute left
(botocore's ``DeferredRefreshableToken._attempt_timeout``). A failed refresh
of a token that is still valid logs a warning and uses the token; with an
expired token it is the error below, naming why the refresh failed.

An expired token that cannot be refreshed (a legacy profile, no registration
in the cache, a refresh refused) or a token the portal refuses is an error
telling the user to run ``aws sso login --profile X``: non-retryable, except
when the refresh failed for a reason that may pass (OIDC 5xx, a timeout).
Tokens, refresh tokens and the client secret never reach a log record, a
message or a repr (:func:`pool._internal.scrub.register_secret`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import anyio

from pool._internal.log import get_logger
from pool._internal.redact import redact
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
from pool.sources._sso_oidc import (
    REFRESH_WINDOW_S,
    OidcRefresher,
    cache_time,
    oidc_token_url,
    refresh_blocker,
)
from pool.sources.base import SourceBase, ensure_not_expired, safe_code

__all__ = ["SsoSource", "sso_cache_path"]

TOKEN_HEADER = "x-amz-sso_bearer_token"
#: botocore's ``DeferredRefreshableToken._attempt_timeout``: at most one refresh a minute
#: (unless the token has less than this left).
ATTEMPT_INTERVAL_S = 60.0
_log = get_logger("pool.sources._sso")


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
        # Legacy profiles are never refreshed (botocore: SSOTokenLoader alone).
        self.refresher: OidcRefresher | None = None
        if session_name:
            session = sessions[session_name]
            oidc_url = oidc_token_url(session.get("sso_region") or self.region, environ)
            self.refresher = OidcRefresher(
                source=name, http=self.http, settings=self._settings, url=oidc_url,
                proxy=proxy_for(oidc_url, {**os.environ, **environ}),
                start_url=session.get("sso_start_url") or merged["sso_start_url"],
                region=session.get("sso_region") or self.region, cache_file=self.cache_file,
            )  # fmt: skip
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[dict[str, Any]] | None = None
        self._last_attempt = -ATTEMPT_INTERVAL_S  # time.monotonic() of the last refresh

    def _token_error(self, why: str, code: str, *, retryable: bool = False) -> CredentialFetchError:
        return CredentialFetchError(
            f"{self.name}: the IAM Identity Center token for profile {self.profile!r} {why}; "
            f"run '{self._login}'",
            source=self.name,
            retryable=retryable,
            code=code,
        )

    async def _load(self) -> tuple[dict[str, Any], datetime]:
        """The cache document and its ``expiresAt``; every secret in it registered."""
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
            # Bearer token, refresh token, client secret: scrubbed from every log record.
            secrets = (doc.get("refreshToken"), doc.get("clientSecret"))
            register_secret(token, *(v for v in secrets if isinstance(v, str)))
            expiry = cache_time(expires, what="expiresAt")
        except (ValueError, KeyError, TypeError):
            raise self._token_error(
                f"cache {self.cache_file} is unreadable", "SsoTokenBad"
            ) from None
        return doc, expiry

    def _expired(
        self, expiry: datetime, why: str = "", *, retryable: bool = False
    ) -> CredentialFetchError:
        return self._token_error(
            f"expired at {expiry:%Y-%m-%d %H:%M:%S}Z{why}", "SsoTokenExpired", retryable=retryable
        )

    async def _token(self) -> str:
        if self.refresher is None:
            doc, expiry = await self._load()
            if expiry <= datetime.now(UTC):
                raise self._expired(expiry)
            return str(doc["accessToken"])
        # One reader-refresher at a time: a fetch that waited re-reads the refreshed file.
        async with self._lock:
            doc, expiry = await self._load()
            left = (expiry - datetime.now(UTC)).total_seconds()
            if left >= REFRESH_WINDOW_S:
                return str(doc["accessToken"])
            since = time.monotonic() - self._last_attempt
            if left > ATTEMPT_INTERVAL_S and since < ATTEMPT_INTERVAL_S:
                return str(doc["accessToken"])  # tried less than a minute ago
            return await self._refresh(doc, expiry)

    async def _refresh(self, doc: dict[str, Any], expiry: datetime) -> str:
        """The refreshed token, or the cached one while it is valid; raises when expired."""
        assert self.refresher is not None
        blocker = refresh_blocker(doc, datetime.now(UTC))
        if blocker is not None:
            if expiry <= datetime.now(UTC):
                raise self._expired(expiry, f" and cannot be refreshed ({blocker})")
            _log.info("sso.token.not_refreshable", source=self.name, profile=self.profile,
                      reason=blocker)  # fmt: skip
            return str(doc["accessToken"])
        task = self._refreshing
        if task is None or task.done():
            self._last_attempt = time.monotonic()
            task = asyncio.get_running_loop().create_task(
                self.refresher.refresh(doc), name=f"SsoSource({self.name}).refresh"
            )
            task.add_done_callback(_retrieve)
            self._refreshing = task
        try:
            # shield: a caller that gives up leaves the refresh running for the others,
            # and its result still reaches the cache file.
            fresh = await asyncio.shield(task)
        except CredentialFetchError as exc:
            reason = redact(str(exc).removeprefix(f"{self.name}: "), limit=500)
            if expiry <= datetime.now(UTC):
                raise self._expired(
                    expiry, f"; refreshing it failed: {reason}", retryable=exc.retryable
                ) from exc
            left = round((expiry - datetime.now(UTC)).total_seconds())
            _log.warning("sso.token.refresh_failed", source=self.name, profile=self.profile,
                         code=exc.code, retryable=exc.retryable, reason=reason,
                         expires_in_s=left)  # fmt: skip
            return str(doc["accessToken"])
        _log.info("sso.token.refreshed", source=self.name, profile=self.profile,
                  expires_at=fresh["expiresAt"])  # fmt: skip
        return str(fresh["accessToken"])

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
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await self.http.aclose()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the refresh's outcome as seen: its callers may all have given up."""
    if not task.cancelled():
        task.exception()
