"""Refreshing an ``sso-session`` token through SSO OIDC ``CreateToken``, as botocore does.

Mirrors botocore 1.43.117 (``botocore/tokens.py`` ``SSOTokenProvider``,
``botocore/utils.py`` ``SSOTokenLoader``/``JSONFileCache``):

* a cached token with less than :data:`REFRESH_WINDOW_S` (15 minutes,
  ``SSOTokenProvider._REFRESH_WINDOW``) left, or already expired, is
  refreshed when the cache holds all of :data:`REFRESH_KEYS` and
  ``registrationExpiresAt`` is still in the future; otherwise it is used as
  it is (botocore logs that at info);
* ``POST /token`` (rest-json, unsigned) with ``{"grantType": "refresh_token",
  "clientId", "clientSecret", "refreshToken"}`` at
  ``https://oidc.<sso_region>.amazonaws.com``, overridden as botocore's
  endpoint resolution does for the service id ``SSO OIDC``:
  ``AWS_ENDPOINT_URL_SSO_OIDC``, then ``AWS_ENDPOINT_URL`` (the config
  file's ``services`` sections are not read);
* what is written back: ``accessToken``, ``expiresAt`` (now + ``expiresIn``,
  as ``%Y-%m-%dT%H:%M:%SZ``), ``startUrl``/``region`` of the sso-session,
  the registration unchanged, and ``refreshToken`` only when the answer has
  one (botocore then drops the spent one). Fields botocore does not know are
  kept (botocore drops them: keeping them is harmless and friendlier to
  other tools sharing the file);
* written atomically as ``JSONFileCache.__setitem__`` does: a temporary file
  in the cache directory (``mkstemp``: mode 0600), flushed and fsynced, then
  ``os.replace``; here in a worker thread, and the temporary file is removed
  if anything fails.

Where this differs from botocore, on purpose: botocore keeps the old token
only when ``CreateToken`` answered an error (``ClientError``); a connection
error or a timeout fails its mandatory refresh even while the token is still
valid. Here every failed refresh of a still-valid token keeps the token (the
caller warns). Legacy profiles (``sso_start_url`` in the profile itself) are
never refreshed, as in botocore, which uses ``SSOTokenLoader`` alone for them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread

from pool._internal.log import get_logger
from pool._internal.redact import redact
from pool._internal.scrub import register_secret
from pool.errors import CredentialFetchError
from pool.sources._http import HttpClient, HttpSettings, StatusHints, status_error, with_retries
from pool.sources.base import parse_expiration, safe_code

__all__ = [
    "REFRESH_KEYS",
    "REFRESH_WINDOW_S",
    "OidcRefresher",
    "cache_time",
    "oidc_token_url",
    "refresh_blocker",
    "write_cache",
]

#: ``SSOTokenProvider._REFRESH_WINDOW`` (botocore 1.43.117): refresh when less is left.
REFRESH_WINDOW_S = 15 * 60
#: The cache fields botocore requires before it tries a refresh (``_refresh_access_token``).
REFRESH_KEYS = ("refreshToken", "clientId", "clientSecret", "registrationExpiresAt")
_GRANT_TYPE = "refresh_token"
_log = get_logger("pool.sources._sso")
# CreateToken's errors (botocore's sso-oidc service-2.json): 400 with an OAuth ``error``
# (invalid_grant, invalid_request, unsupported_grant_type, slow_down...), 401
# invalid_client, 500 server_error.
_HINTS = StatusHints(
    {
        401: "the client registration in the token cache is invalid or expired",
    },
    "IAM Identity Center OIDC is unavailable; retry later",
    "the refresh token was refused (the session ended or was revoked)",
)


def oidc_token_url(region: str, environ: Mapping[str, str]) -> str:
    """``CreateToken``'s URL: ``AWS_ENDPOINT_URL_SSO_OIDC``, ``AWS_ENDPOINT_URL`` or AWS's.

    botocore's variable for a service is ``AWS_ENDPOINT_URL_`` + its service id
    (``SSO OIDC``) upper-cased with spaces as underscores.
    """
    base = (
        environ.get("AWS_ENDPOINT_URL_SSO_OIDC")
        or environ.get("AWS_ENDPOINT_URL")
        or f"https://oidc.{region}.amazonaws.com"
    )
    return f"{base.rstrip('/')}/token"


def cache_time(value: object, *, what: str) -> datetime:
    """A cache timestamp: ISO 8601 (``...Z``), or ``...UTC`` as ``JSONFileCache``'s default
    serializer (``%Y-%m-%dT%H:%M:%S%Z``) writes it. Raises ``ValueError`` naming ``what``."""
    if isinstance(value, str) and value.strip().endswith("UTC"):
        value = value.strip()[:-3] + "+00:00"
    return parse_expiration(value, what=what)


def _format_time(when: datetime) -> str:
    # botocore's _serialize_utc_timestamp.
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refresh_blocker(doc: Mapping[str, Any], now: datetime) -> str | None:
    """Why the cached token cannot be refreshed, or None when it can (botocore's checks)."""
    missing = [k for k in REFRESH_KEYS if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        return f"the cache holds no {', '.join(missing)}"
    try:
        registration = cache_time(doc["registrationExpiresAt"], what="registrationExpiresAt")
    except ValueError as exc:
        return str(exc)
    if registration <= now:
        return f"the client registration expired at {registration:%Y-%m-%d %H:%M:%S}Z"
    return None


def _write_atomic(path: str, text: str) -> None:
    """``JSONFileCache.__setitem__``: mkstemp (0600) in the directory, fsync, os.replace."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


async def write_cache(path: str, doc: Mapping[str, Any]) -> None:
    """Replace the cache file with ``doc`` atomically, in a worker thread."""
    await anyio.to_thread.run_sync(_write_atomic, path, json.dumps(dict(doc)))


class OidcRefresher:
    """One ``CreateToken`` (refresh_token grant) and the write-back, for one sso-session.

    Not single-flight by itself: :class:`pool.sources._sso.SsoSource` serialises it.
    """

    def __init__(
        self,
        *,
        source: str,
        http: HttpClient,
        settings: HttpSettings,
        url: str,
        proxy: str | None,
        start_url: str,
        region: str,
        cache_file: str,
    ) -> None:
        self.source = source
        self.http = http
        self.settings = settings
        self.url = url
        self.proxy = proxy
        self.start_url = start_url
        self.region = region
        self.cache_file = cache_file

    async def refresh(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Trade the cached refresh token for a new access token; write and return the cache.

        Raises :class:`CredentialFetchError`: non-retryable when the service
        refused the grant or the client (log in again), retryable for 5xx,
        throttling, timeouts and connection failures (after the usual retries).
        A cache file that cannot be written is logged (warning), not raised: the
        new token is returned all the same.
        """
        answer = await with_retries(
            lambda: self._create_token(doc), settings=self.settings, source=self.source
        )
        expires_at = datetime.now(UTC) + timedelta(seconds=answer["expiresIn"])
        new = {**doc, "startUrl": self.start_url, "region": self.region,
               "accessToken": answer["accessToken"],
               "expiresAt": _format_time(expires_at)}  # fmt: skip
        new.pop("refreshToken", None)  # botocore keeps only the one the answer gives
        if answer.get("refreshToken"):
            new["refreshToken"] = answer["refreshToken"]
        try:
            await write_cache(self.cache_file, new)
        except OSError as exc:
            # The new token still serves this fetch; later ones read the old file, and
            # fall back on its token (or say to log in) if its spent refresh token is refused.
            reason = exc.strerror or type(exc).__name__
            _log.warning("sso.token.cache_write_failed", source=self.source,
                         path=self.cache_file, reason=reason)  # fmt: skip
        return new

    async def _create_token(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        what = "SSO OIDC CreateToken"
        body = json.dumps({"grantType": _GRANT_TYPE, "clientId": doc["clientId"],
                           "clientSecret": doc["clientSecret"],
                           "refreshToken": doc["refreshToken"]}).encode()  # fmt: skip
        secrets = (doc["clientSecret"], doc["refreshToken"])
        resp = await self.http.request(
            "POST",
            self.url,
            headers={"Content-Type": "application/json"},
            data=body,
            what=what,
            secrets=secrets,
            proxy=self.proxy,
        )
        if resp.status != 200:
            raise self._refused(resp.status, resp.headers, resp.body, secrets)
        try:
            answer = json.loads(resp.body)
            token, expires_in = answer["accessToken"], answer["expiresIn"]
            if not isinstance(token, str) or not token or isinstance(expires_in, bool):
                raise ValueError
            answer["expiresIn"] = int(expires_in)
        except (ValueError, KeyError, TypeError):
            raise CredentialFetchError(
                f"{self.source}: {what} answered without accessToken and expiresIn; is "
                "AWS_ENDPOINT_URL_SSO_OIDC the IAM Identity Center OIDC endpoint?",
                source=self.source,
                retryable=False,
                code="MalformedResponse",
            ) from None
        fresh = answer.get("refreshToken")
        register_secret(token, fresh if isinstance(fresh, str) else None)
        return dict(answer)

    def _refused(
        self, status: int, headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...]
    ) -> CredentialFetchError:
        """The error for a non-200 answer: the OAuth ``error`` code names it, never a secret."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        oauth = safe_code(doc.get("error"))
        typed = safe_code(headers.get("x-amzn-ErrorType", "").split(":")[0])
        code = oauth or typed
        err = status_error(self.source, "SSO OIDC CreateToken", status, _HINTS, code=code,
                           retryable=code == "slow_down")  # fmt: skip
        text = doc.get("error_description")
        if isinstance(text, str) and text:
            # The service's own words, redacted (third-party text), after the hint.
            err.args = (f'{err.args[0]} ("{redact(text, *secrets, limit=200)}")',)
        return err
