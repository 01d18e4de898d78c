"""Credentials from the container credentials endpoint (ECS, EKS Pod Identity).

ECS sets ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, resolved against
``http://169.254.170.2``. EKS Pod Identity (and ECS Anywhere, Greengrass,
Lambda SnapStart) set ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` plus an
``Authorization`` value from ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (EKS:
``http://169.254.170.23/v1/credentials``) or ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.

The host rule: a loopback address, ``169.254.170.2``, ``169.254.170.23``,
``fd00:ec2::23`` or ``localhost``, whatever the scheme (botocore 1.40's rule;
see :func:`validate_full_uri` for why newer botocore's wider rule is not
followed). A URI breaking it is refused at construction, before any request is
sent, because the request carries the authorization token and the response
carries credentials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import urlsplit

from pool._internal.scrub import register_secret
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
from pool.sources.base import SourceBase, credentials_from_document, read_token_file, safe_code

__all__ = ["ContainerSource"]

RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTH_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
AUTH_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
ECS_BASE = "http://169.254.170.2"
_ALLOWED_HTTP_IPS = frozenset(
    ip_address(h) for h in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_ALLOWED_HOSTS = ("169.254.170.2", "localhost", "169.254.170.23", "fd00:ec2::23")  # botocore's
_EKS_HOSTS = (ip_address("169.254.170.23"), ip_address("fd00:ec2::23"))
_REFUSED_TOKEN = (
    f"the authorization token was refused: check {AUTH_TOKEN_FILE}/{AUTH_TOKEN} "
    "(EKS: the pod identity association)"
)
_STATUS_HINTS = StatusHints(
    by_status={
        401: _REFUSED_TOKEN,
        403: _REFUSED_TOKEN,
        404: f"no credentials at this path: check {RELATIVE_URI}/{FULL_URI}",
    },
    retry="the endpoint is overloaded or failing; retry later",
    other="the endpoint refused the request",
)
_TOKEN_HINT = (
    "mount the token file (EKS Pod Identity: check the pod's service account association) "
    f"or unset {AUTH_TOKEN_FILE}"
)


def _ip(host: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def validate_full_uri(uri: str) -> str:
    """Return ``uri`` if the host rule allows it; raise :class:`ConfigurationError` if not.

    The rule of ``botocore.utils.ContainerMetadataFetcher._validate_allowed_url``
    as read in botocore 1.40.61: the host must be a loopback address or one of
    ``169.254.170.2``, ``localhost``, ``169.254.170.23``, ``fd00:ec2::23`` --
    whatever the scheme. botocore 1.43 (read in 1.43.117) also accepts ``https``
    to *any* host, as some other AWS SDKs do. This library keeps the narrower
    rule on purpose: ECS, EKS Pod Identity, ECS Anywhere and Greengrass all serve
    on those hosts, and a variable pointing at ``https://evil.test/`` would
    otherwise hand that host the container authorization token and take
    credentials from it. tests/sources/test_input_refusals.py checks the rule
    against the installed botocore's list of hosts and scheme handling.
    """
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError for :99999 or :abc
    except ValueError as exc:
        raise ConfigurationError(
            f"container credentials URI {describe_url(uri)!r} is not a valid URL ({exc}); "
            f"fix {FULL_URI} (a port is a number from 1 to 65535)"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"container credentials URI {describe_url(uri)!r} must be an absolute http:// or "
            f"https:// URL; fix {FULL_URI}"
        )
    ip = _ip(host)
    if host in _ALLOWED_HOSTS or (ip is not None and (ip.is_loopback or ip in _ALLOWED_HTTP_IPS)):
        return uri
    raise ConfigurationError(
        f"container credentials URI refused: host {host!r} is not allowed (the request carries "
        "the authorization token and the response credentials). Rule (botocore 1.40's): a "
        "loopback address or one of 169.254.170.2, 169.254.170.23, fd00:ec2::23, localhost, "
        f"whatever the scheme. Fix {FULL_URI}"
    )


def _check_header_value(token: str, *, source: str, origin: str) -> str:
    register_secret(token, token.strip())  # scrubbed from every log record of the process
    if "\r" in token or "\n" in token:
        raise ConfigurationError(
            f"{source}: the authorization token from {origin} contains a line break (CR/LF), "
            "which is not a legal header value; write the token without a trailing newline "
            "(e.g. printf '%s' \"$TOKEN\" > file)"
        )
    bad = next((c for c in token if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F), None)
    if bad is not None:
        raise ConfigurationError(
            f"{source}: the authorization token from {origin} contains the control character "
            f"U+{ord(bad):04X}, which is not a legal header value; fix {origin}"
        )
    return token


class ContainerSource(SourceBase):
    """GETs the container credentials JSON over one long-lived HTTP session.

    Give exactly one of ``relative_uri`` (ECS; resolved against
    ``http://169.254.170.2``) or ``full_uri``. ``auth_token_file`` is re-read at
    every fetch (EKS rotates it) in a worker thread and wins over
    ``auth_token``. Tokens with CR/LF are refused.

    ``name`` defaults to ``"eks_pod_identity"`` when the host is the EKS Pod
    Identity agent's (``169.254.170.23``/``fd00:ec2::23``) or a token file is
    used, and to ``"ecs"`` otherwise. Retryable failures (timeouts, connection
    errors, 5xx, 429) are retried ``attempts`` times in total within one fetch.
    """

    def __init__(
        self,
        *,
        full_uri: str | None = None,
        relative_uri: str | None = None,
        auth_token: str | None = None,
        auth_token_file: str | os.PathLike[str] | None = None,
        name: str | None = None,
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.1,
    ) -> None:
        super().__init__()
        if (full_uri is None) == (relative_uri is None):
            raise ConfigurationError(
                "ContainerSource needs exactly one of full_uri or relative_uri "
                f"({FULL_URI} or {RELATIVE_URI})"
            )
        if relative_uri is not None:
            if not relative_uri.startswith("/"):
                raise ConfigurationError(
                    f"{RELATIVE_URI} must start with '/'; got a value that does not"
                )
            url = ECS_BASE + relative_uri
        else:
            assert full_uri is not None
            url = validate_full_uri(full_uri)
        self.url = url
        self._token_file = os.fspath(auth_token_file) if auth_token_file is not None else None
        host_ip = _ip(urlsplit(url).hostname or "")
        self.name = name or (
            "eks_pod_identity" if host_ip in _EKS_HOSTS or self._token_file else "ecs"
        )
        self._token = (
            _check_header_value(auth_token, source=self.name, origin=AUTH_TOKEN)
            if auth_token is not None
            else None
        )
        self._settings = HttpSettings(
            connect_timeout=connect_timeout, timeout=timeout, attempts=attempts, backoff=backoff
        )
        self.http = HttpClient(self.name, self._settings)
        self._where = describe_url(url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> ContainerSource:
        """A source configured from the standard variables (default :data:`os.environ`).

        As botocore: the relative URI wins over the full URI; the token file
        over the token. ``options`` are the timeout/retry keywords of the
        constructor. Raises :class:`pool.ConfigurationError` when neither URI
        is set, or the full URI is refused.
        """
        env = os.environ if environ is None else environ
        relative, full = env.get(RELATIVE_URI) or None, env.get(FULL_URI) or None
        if relative is None and full is None:
            raise ConfigurationError(
                f"container credentials: neither {RELATIVE_URI} nor {FULL_URI} is set; "
                "this is not an ECS task or an EKS Pod Identity pod"
            )
        return cls(
            relative_uri=relative,
            full_uri=None if relative is not None else full,
            auth_token=env.get(AUTH_TOKEN) or None,
            auth_token_file=env.get(AUTH_TOKEN_FILE) or None,
            **options,
        )

    async def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._token
        if self._token_file is not None:
            token = await read_token_file(
                self._token_file,
                source=self.name,
                what="authorization token file",
                hint=_TOKEN_HINT,
                read_timeout=self._settings.timeout,
            )
            try:
                _check_header_value(token, source=self.name, origin=AUTH_TOKEN_FILE)
            except ConfigurationError as exc:
                raise CredentialFetchError(
                    str(exc), source=self.name, retryable=False, code="InvalidToken"
                ) from None
        if token is not None:
            headers["Authorization"] = token
        return headers

    async def _fetch(self) -> Credentials:
        headers = await self._headers()

        async def attempt() -> Credentials:
            resp = await self.http.request("GET", self.url, headers=headers, what="GET")
            return self._parse(resp)

        return await _with_retries(attempt, settings=self._settings, source=self.name)

    def _parse(self, resp: HttpResponse) -> Credentials:
        if resp.status != 200:
            raise self._status_error(resp)
        try:
            doc = json.loads(resp.body)
        except ValueError:
            raise CredentialFetchError(
                f"{self.name}: {self._where} returned HTTP 200 with a body that is not JSON; "
                "check that the URI points at the container credentials endpoint",
                source=self.name,
                retryable=False,
                status=200,
                code="MalformedResponse",
            ) from None
        return credentials_from_document(doc, source=self.name, endpoint=self._where)

    def _status_error(self, resp: HttpResponse) -> CredentialFetchError:
        code = None
        try:
            doc = json.loads(resp.body)
            if isinstance(doc, dict):
                code = safe_code(doc.get("code") or doc.get("Code"))
        except ValueError:
            pass
        return status_error(self.name, f"GET {self._where}", resp.status, _STATUS_HINTS, code=code)

    def _holds_resources(self) -> bool:
        return self.http.session is not None

    async def _aclose(self) -> None:
        await self.http.aclose()
