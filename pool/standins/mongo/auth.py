"""The server side of MONGODB-AWS, as mongod/Atlas implement it.

Conversation (two SASL steps on ``$external``):

1. ``saslStart`` payload ``{r: 32-byte client nonce, p: 110 ('n') or 121 ('y')}``;
   the server answers ``{s: r + 32 random bytes, h: <STS host>}``.
2. ``saslContinue`` payload ``{a: Authorization, d: X-Amz-Date, t?: session token}``.
   The server does not trust the client's request: it rebuilds the signed
   ``POST / Action=GetCallerIdentity&Version=2011-06-15`` from its own host,
   nonce and channel-binding flag, takes only ``a``, ``d`` and ``t`` from the
   client, and has STS (here :meth:`CredentialAuthority.verify_request`)
   check it. The caller's assumed-role ARN maps to a database user by its
   IAM role ARN.

Every failure raises :class:`AuthFailure` carrying a short ``reason`` for logs
and stats; the wire answer is always mongod's generic code 18. Nothing here
ever stores or logs a secret key or session token.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.errors import BSONError

from pool._internal.log import key_hint
from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority, StsError, role_arn_of

__all__ = [
    "AuthFailure",
    "AwsConversation",
    "Principal",
    "region_for",
    "validate_sts_host",
]

MECHANISM = "MONGODB-AWS"
_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
_REQUIRED_SIGNED = frozenset(
    {
        "content-length",
        "content-type",
        "host",
        "x-amz-date",
        "x-mongodb-gs2-cb-flag",
        "x-mongodb-server-nonce",
    }
)
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)")
_CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9]{1,128})/")


class AuthFailure(Exception):
    """Authentication failed; ``reason`` is short and safe to log (never a secret)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """Who authenticated: database user, caller ARN, access key id and its hint (``ASIA…WXYZ``)."""

    user: str
    arn: str
    key_hint: str
    access_key_id: str


def validate_sts_host(host: str) -> str:
    """Check ``host`` by the driver spec's rules (1..255 bytes, no empty label)."""
    if not host or len(host.encode()) > 255 or not all(host.split(".")):
        raise ConfigurationError(
            f"sts_host {host[:60]!r} is not a valid host: it needs 1..255 bytes and no "
            "empty label (no leading, trailing or doubled dot), e.g. 'sts.us-west-2.amazonaws.com'"
        )
    return host


def region_for(sts_host: str) -> str:
    """The signing region drivers derive: us-east-1 for the global host or a dotless one."""
    labels = sts_host.split(".")
    if sts_host == "sts.amazonaws.com" or len(labels) == 1:
        return "us-east-1"
    return labels[1]


def _decode_payload(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, bytes):
        raise AuthFailure("bad_payload", f"payload is {type(payload).__name__}, not binary")
    try:
        return bson.decode(payload)
    except (BSONError, ValueError, TypeError, OverflowError) as exc:
        raise AuthFailure("bad_payload", "payload is not a BSON document") from exc


class AwsConversation:
    """One connection's MONGODB-AWS conversation: :meth:`start`, then :meth:`finish`.

    Not thread-safe; one instance per connection and attempt. The server nonce
    is generated here and never leaves the server except in the challenge.
    """

    def __init__(self, sts_host: str) -> None:
        self.sts_host = validate_sts_host(sts_host)
        self._nonce: bytes | None = None
        self._cb_flag = "n"
        #: Whether :meth:`finish` got as far as asking STS (Atlas's STS quota).
        self.sts_called = False

    def start(self, payload: Any) -> bytes:
        """Check the client-first payload; return the BSON challenge ``{s, h}``."""
        doc = _decode_payload(payload)
        nonce, flag = doc.get("r"), doc.get("p")
        if not isinstance(nonce, bytes) or len(nonce) != 32:
            raise AuthFailure("bad_payload", "client nonce must be 32 bytes")
        # An int (BSON int32/int64) only: a double 110.0 equals 110 but is not a flag.
        if not isinstance(flag, int) or isinstance(flag, bool) or flag not in (110, 121):
            raise AuthFailure("bad_payload", "gs2 channel binding flag must be 110 or 121")
        self._cb_flag = chr(flag)
        self._nonce = nonce + os.urandom(32)
        return bson.encode({"s": bson.Binary(self._nonce), "h": self.sts_host})

    def finish(
        self, payload: Any, authority: CredentialAuthority, users: Mapping[str, str]
    ) -> Principal:
        """Verify the client-final payload with STS; return the mapped database user."""
        nonce, self._nonce = self._nonce, None  # a nonce is good for one attempt only
        if nonce is None:
            raise AuthFailure("no_conversation", "saslContinue without a started conversation")
        headers = self._rebuild(nonce, _decode_payload(payload))
        key_id = _match(_CREDENTIAL, headers["Authorization"])
        hint = key_hint(key_id)
        self.sts_called = True
        try:
            creds = authority.verify_request(
                "POST", "/", headers, _BODY, region=region_for(self.sts_host), service="sts"
            )
        except StsError as exc:
            raise AuthFailure(f"sts:{exc.code}", f"key {hint}") from exc
        role = role_arn_of(creds.arn)
        user = users.get(role) or users.get(creds.arn)
        if user is None:
            raise AuthFailure("unmapped_role", f"{role} (key {hint}) maps to no database user")
        return Principal(user=user, arn=creds.arn, key_hint=hint, access_key_id=creds.access_key_id)

    def _rebuild(self, nonce: bytes, doc: Mapping[str, Any]) -> dict[str, str]:
        """The request STS must see, from the server's own state plus ``a``/``d``/``t``."""
        auth, date, token = doc.get("a"), doc.get("d"), doc.get("t")
        if not isinstance(auth, str) or not isinstance(date, str):
            raise AuthFailure("bad_payload", "fields 'a' and 'd' must be strings")
        if token is not None and (not isinstance(token, str) or not token):
            raise AuthFailure("bad_payload", "field 't' must be a non-empty string")
        if not _AMZ_DATE.match(date):
            raise AuthFailure("bad_payload", "field 'd' is not an X-Amz-Date")
        signed = set(_match(_SIGNED_HEADERS, auth).lower().split(";"))
        required = _REQUIRED_SIGNED | ({"x-amz-security-token"} if token else set())
        if not required <= signed:
            missing = ",".join(sorted(required - signed))
            raise AuthFailure("unsigned_headers", f"SignedHeaders lacks {missing}")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(_BODY)),
            "Host": self.sts_host,
            "X-MongoDB-Server-Nonce": base64.standard_b64encode(nonce).decode(),
            "X-MongoDB-GS2-CB-Flag": self._cb_flag,
            "X-Amz-Date": date,
            "Authorization": auth,
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers


def _match(pattern: re.Pattern[str], text: str) -> str:
    m = pattern.search(text)
    return m.group(1) if m else ""
