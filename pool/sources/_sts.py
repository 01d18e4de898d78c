"""STS calls as plain HTTP requests through the source's own aiohttp session.

STS speaks the AWS Query protocol: a form-encoded ``POST /`` with ``Action``
and ``Version=2011-06-15``, answered in XML (``<XResponse><XResult>...``, or
``<ErrorResponse><Error><Code>``). Two calls are all the sources need:
``AssumeRoleWithWebIdentity`` (unsigned: the token is the proof) and
``AssumeRole`` (SigV4-signed with the base credentials, per call); ``check``
adds ``GetCallerIdentity``. So a source owns one
:class:`~pool.sources._http.HttpClient` (one keep-alive session, aiohttp's
default TLS context) instead of an aiobotocore client, whose construction
loads service models and endpoint rules (tens of ms, in a worker thread) and
whose TLS set-up needed aiobotocore private attributes
(``_get_ssl_context``, ``_verify``, ``_connector_args``) to stay off the loop.

Signing uses botocore's public ``botocore.auth.SigV4Auth`` on a
``botocore.awsrequest.AWSRequest``. botocore is imported once, in a worker
thread (:func:`load_signer`); signing itself is ~0.1 ms of hashing and runs on
the loop. Importing this module loads no AWS SDK and no aiohttp.

Where the calls go is :mod:`pool.sources._sts_endpoint` (the SDKs' regional,
FIPS, dual-stack and override rules).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import anyio

from pool._internal.redact import redact
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, InvariantError
from pool.sources._http import HttpClient, HttpSettings, describe_url, proxy_for
from pool.sources._sts_endpoint import StsEndpoint
from pool.sources.base import safe_code

__all__ = ["StsClient", "load_signer", "sign", "sts_error"]

VERSION = "2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
# STS error codes worth retrying; everything else is the caller's to fix.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "IDPCommunicationError",
        "RequestTimeout",
    }
)
HINTS = {
    "AccessDenied": "the role's trust policy does not allow this caller; check the role ARN "
    "and its trust relationship",
    "InvalidIdentityToken": "STS rejected the web identity token; check the OIDC provider "
    "registered in IAM and the token's audience (sts.amazonaws.com)",
    "ExpiredTokenException": "the web identity token expired; the token file is not being "
    "refreshed (check the projected service account token volume)",
    "ExpiredToken": "the base credentials used to sign the request expired",
    "InvalidClientTokenId": "the base credentials are unknown to STS (or were issued by the "
    "global endpoint and are not valid in this region)",
    "SignatureDoesNotMatch": "the base credentials' secret is wrong, the clock is skewed, or "
    "the signing region does not match the endpoint (AWS_REGION vs AWS_ENDPOINT_URL_STS)",
    "RegionDisabledException": "STS is not activated in this region; set AWS_REGION to an "
    "active one or activate it in IAM",
    "IDPCommunicationError": "STS could not reach the OIDC identity provider; retry later",
    "ValidationError": "a parameter was rejected (DurationSeconds above the role's maximum?)",
}
_signer: ModuleType | None = None


def _import_signer() -> ModuleType:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    module: ModuleType = botocore
    return module


async def load_signer() -> ModuleType:
    """botocore (``auth``, ``awsrequest``, ``credentials``), imported once in a worker thread."""
    global _signer
    if _signer is None:
        _signer = await anyio.to_thread.run_sync(_import_signer)
    assert _signer is not None
    return _signer


def sign(botocore: Any, creds: Credentials, url: str, region: str, body: bytes) -> dict[str, str]:
    """SigV4 headers (``Authorization``, ``X-Amz-Date``, ``X-Amz-Security-Token``) for a POST."""
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": CONTENT_TYPE}
    )
    signing = botocore.credentials.ReadOnlyCredentials(
        creds.access_key_id, creds.secret_access_key, creds.session_token
    )
    botocore.auth.SigV4Auth(signing, "sts", region).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _to_dict(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    return {_local(child.tag): _to_dict(child) for child in children}


def parse_xml(body: bytes) -> ET.Element | None:
    """The XML root, or None for anything that is not plain XML.

    A DOCTYPE is refused outright (no entity tricks); the body is already capped
    at :attr:`HttpSettings.max_body` bytes.
    """
    if b"<!DOCTYPE" in body[:2048].upper() or b"<!ENTITY" in body.upper():
        return None
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


class StsClient:
    """STS requests for one source, through one long-lived aiohttp session.

    ``settings.timeout`` bounds one attempt; retries are
    :func:`pool.sources._http.with_retries`'s. After :meth:`aclose`, calls raise
    :class:`pool.PoolClosedError`.
    """

    def __init__(
        self, *, source: str, endpoint: StsEndpoint, signed: bool, settings: HttpSettings
    ) -> None:
        self.source = source
        self.endpoint = endpoint
        self.region = endpoint.region
        self.endpoint_url = endpoint.configured
        self.url = endpoint.url.rstrip("/") + "/"
        self.signed = signed
        self.settings = settings
        self.where = describe_url(self.url)
        # botocore honours HTTPS_PROXY/NO_PROXY for STS; so does this client.
        self.proxy = proxy_for(self.url, os.environ)
        self._http = HttpClient(source, settings)

    @property
    def client(self) -> Any:
        """The aiohttp session, or ``None`` before the first call / after close."""
        return self._http.session

    @property
    def clients_created(self) -> int:
        """How many sessions were created (1 once used: one session for every call)."""
        return 1 if self._http.requests_sent else 0

    @property
    def connections_opened(self) -> int:
        return self._http.connections_opened

    async def call(
        self,
        operation: str,
        *,
        credentials: Credentials | None,
        secrets: tuple[str, ...],
        **params: Any,
    ) -> dict[str, Any]:
        """One STS call (no retry); the ``<operation>Result`` element as nested dicts.

        Errors become :class:`CredentialFetchError` naming the STS code and its
        message (redacted, without ``secrets``), a network failure, or a body
        that is not STS XML. Raises :class:`pool.PoolClosedError` after :meth:`aclose`.
        """
        body = urlencode({"Action": operation, "Version": VERSION, **params}).encode()
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "mongodb-aws-pool"}
        if self.signed:
            if credentials is None:
                raise InvariantError("signed STS call made without credentials")
            botocore = await load_signer()
            headers |= sign(botocore, credentials, self.url, self.region, body)
            secrets = (*secrets, credentials.secret_access_key, credentials.session_token or "")
        where = f"{self.source}: STS {operation} at {self.where}"
        response = await self._http.request(
            "POST",
            self.url,
            headers=headers,
            data=body,
            what=f"STS {operation}",
            secrets=tuple(s for s in secrets if s),
            proxy=self.proxy,
        )
        root = parse_xml(response.body)
        if response.status == 200 and root is not None:
            result = root.find(f"{{*}}{operation}Result")
            if result is not None and _local(root.tag) == f"{operation}Response":
                parsed = _to_dict(result)
                return parsed if isinstance(parsed, dict) else {}
        return self._failure(where, response.status, root, secrets)

    def _failure(
        self, where: str, status: int, root: ET.Element | None, secrets: tuple[str, ...]
    ) -> dict[str, Any]:
        error = root.find("{*}Error") if root is not None else None
        if error is not None and status != 200:
            code = safe_code((error.findtext("{*}Code") or "").strip()) or "Unknown"
            message = error.findtext("{*}Message") or ""
            raise sts_error(self.source, where, code, message, status, secrets)
        retryable = status >= 500 or status in (408, 429)
        what = "a body that is not STS XML" if root is None else "XML that is not an STS answer"
        raise CredentialFetchError(
            f"{where} answered HTTP {status} with {what}; "
            + (
                "retry later (a proxy or load balancer in the way?)"
                if retryable
                else "is the endpoint really STS (AWS_ENDPOINT_URL_STS)?"
            ),
            source=self.source,
            retryable=retryable,
            status=status,
            code=f"HTTP{status}" if retryable else "MalformedResponse",
        )

    async def aclose(self) -> None:
        """Close the HTTP session; later calls fail. Idempotent."""
        await self._http.aclose()


def sts_error(
    source: str, where: str, code: str, message: str, status: int, secrets: tuple[str, ...]
) -> CredentialFetchError:
    """Classify an STS ``ErrorResponse``; its message is quoted redacted, without ``secrets``."""
    safe = redact(message, *[s for s in secrets if s], limit=300)
    retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
    hint = HINTS.get(code) or ("retry later" if retryable else "see the message")
    return CredentialFetchError(
        f"{where} failed: {code} (HTTP {status}): {safe}; {hint}",
        source=source,
        retryable=retryable,
        status=status,
        code=code,
    )
