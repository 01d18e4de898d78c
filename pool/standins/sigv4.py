"""SigV4 verification the way STS does it, with botocore's own signer.

The stand-ins never hand-write signature crypto: the canonical request, the
string to sign and the signature are recomputed by botocore's ``SigV4Auth`` on
an ``AWSRequest`` holding exactly the headers the client listed in
``SignedHeaders``, with ``context["timestamp"]`` set to the client's
``X-Amz-Date``. The result is compared with :func:`hmac.compare_digest`.

:class:`StsError` lives here (and is re-exported by
:mod:`pool.standins.authority`) because parsing an ``Authorization`` header is
the first place an STS error can arise.

Pure functions, no shared state: safe from any thread.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import ReadOnlyCredentials

__all__ = [
    "MAX_SKEW_SECONDS",
    "ParsedAuthorization",
    "StsError",
    "check_scope",
    "compute_signature",
    "parse_authorization",
    "request_time",
    "signature_matches",
]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60


class StsError(Exception):
    """An error answer as real STS gives it: ``code``, ``message``, HTTP ``status``.

    ``str()`` is ``"<code>: <message>"``; messages never carry a secret key,
    a session token or a web identity token.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @property
    def error_type(self) -> str:
        """``Sender`` for client faults (4xx), ``Receiver`` for server faults."""
        return "Receiver" if self.status >= 500 else "Sender"


def incomplete(message: str) -> StsError:
    return StsError("IncompleteSignature", message, 400)


def signature_mismatch(message: str | None = None) -> StsError:
    return StsError(
        "SignatureDoesNotMatch",
        message
        or "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details.",
        403,
    )


@dataclass(frozen=True)
class ParsedAuthorization:
    """The fields of an ``AWS4-HMAC-SHA256`` Authorization header (no secrets in it)."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization:
    """Split an Authorization header; raise ``IncompleteSignature`` when malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise incomplete(f"Unsupported AWS 'algorithm': '{algorithm[:40]}'")
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not params.get(k)]
    if missing:
        raise incomplete(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        )
    scope = params["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise incomplete(
            "Credential must have exactly 5 slash-delimited elements, "
            "e.g. keyid/date/region/service/term"
        )
    signed = tuple(h.strip().lower() for h in params["SignedHeaders"].split(";"))
    if not all(signed):
        raise incomplete("SignedHeaders contains an empty header name.")
    return ParsedAuthorization(
        access_key_id=scope[0],
        scope_date=scope[1],
        region=scope[2],
        service=scope[3],
        terminator=scope[4],
        signed_headers=signed,
        signature=params["Signature"],
    )


def request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The signing timestamp (``YYYYMMDDTHHMMSSZ``) and its instant, from X-Amz-Date or Date."""
    lower = {k.lower(): v for k, v in headers.items()}
    amz = lower.get("x-amz-date")
    try:
        if amz is not None:
            when = datetime.strptime(amz.strip(), SIGV4_TIMESTAMP).replace(tzinfo=UTC)
            return amz.strip(), when
        if "date" in lower:
            when = parsedate_to_datetime(lower["date"]).astimezone(UTC)
            return when.strftime(SIGV4_TIMESTAMP), when
    except (ValueError, TypeError, IndexError) as exc:
        raise incomplete(
            "Date must be in ISO-8601 'basic format'. Got an unparsable date."
        ) from exc
    raise incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def check_scope(
    auth: ParsedAuthorization,
    timestamp: str,
    when: datetime,
    now: datetime,
    *,
    service: str,
    region: str | None,
) -> None:
    """Raise ``SignatureDoesNotMatch`` with STS's wording for skew or a wrong scope."""
    if when < now - timedelta(seconds=MAX_SKEW_SECONDS):
        limit = (now - timedelta(seconds=MAX_SKEW_SECONDS)).strftime(SIGV4_TIMESTAMP)
        raise signature_mismatch(
            f"Signature expired: {timestamp} is now earlier than {limit} "
            f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)"
        )
    if when > now + timedelta(seconds=MAX_SKEW_SECONDS):
        limit = (now + timedelta(seconds=MAX_SKEW_SECONDS)).strftime(SIGV4_TIMESTAMP)
        raise signature_mismatch(
            f"Signature not yet current: {timestamp} is still later than {limit} "
            f"({now.strftime(SIGV4_TIMESTAMP)} + 15 min.)"
        )
    if auth.scope_date != timestamp[:8]:
        raise signature_mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.scope_date[:16]}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    if region is not None and auth.region != region:
        raise signature_mismatch("Credential should be scoped to a valid region. ")
    if auth.service != service:
        raise signature_mismatch(f"Credential should be scoped to correct service: '{service}'. ")
    if auth.terminator != "aws4_request":
        raise signature_mismatch(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator[:40]}'. "
        )
    if "host" not in auth.signed_headers:
        raise signature_mismatch(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )


class _ExactHeadersSigV4(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's signer, told to sign exactly the headers the client listed.

    Stock ``headers_to_sign`` takes every request header except a blacklist;
    the verifier must instead use the client's ``SignedHeaders`` verbatim.
    """

    def __init__(self, creds: Any, service: str, region: str, signed: HTTPHeaders) -> None:
        super().__init__(creds, service, region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        return self._signed


def encode_query(path: str) -> str:
    """``path`` with its query percent-encoded as SigV4 canonicalises it.

    botocore's signer assumes a query that is already URI-encoded (it only
    splits and sorts it); a client may send raw UTF-8 (AWS's published test
    ``get-vanilla-utf8-query``: ``/?ሴ=bar`` signs as ``%E1%88%B4=bar``).
    Every byte outside the unreserved set is encoded; existing ``%XX`` escapes
    are kept, so an encoded query is unchanged.
    """
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        pairs.append(quote(key, safe="-_.~%") + eq + quote(value, safe="-_.~%"))
    return f"{base}?{'&'.join(pairs)}"


def compute_signature(
    *,
    access_key_id: str,
    secret_access_key: str,
    auth: ParsedAuthorization,
    timestamp: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The hex signature botocore computes for this request and secret.

    Raises ``SignatureDoesNotMatch`` when a signed header is absent or when a
    signed ``X-Amz-Content-SHA256`` does not match the body (botocore would
    otherwise trust that header in place of hashing the body).
    """
    lower: dict[str, str] = {k.lower(): v for k, v in headers.items()}
    signed = HTTPHeaders()
    for name in auth.signed_headers:
        if name not in lower:
            raise signature_mismatch()
        signed[name] = lower[name]
    declared = lower.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        raise signature_mismatch()
    # Only path and query are taken from the URL; the host comes from the signed headers.
    request = AWSRequest(method=method.upper(), url=f"https://standin.invalid{encode_query(path)}")
    request.data = body
    for name in auth.signed_headers:
        request.headers[name] = lower[name]
    request.context["timestamp"] = timestamp
    creds = ReadOnlyCredentials(access_key_id, secret_access_key, None)
    signer = _ExactHeadersSigV4(creds, auth.service, auth.region, signed)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return str(signer.signature(string_to_sign, request))


def signature_matches(expected: str, provided: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(
        expected.encode("ascii", "replace"), provided.encode("ascii", "replace")
    )
