"""The credential authority behind every AWS stand-in: it mints, remembers and checks.

One :class:`CredentialAuthority` plays IAM and STS's memory: it mints
temporary credentials (``ASIA…`` key, secret, session token, expiry) and
long-term keys (``AKIA…``), issues web identity tokens, and verifies
SigV4-signed requests as STS does, recomputing signatures with botocore's
signer (:mod:`pool.standins.sigv4`). IMDS, the container endpoints and STS
serve what it mints; the MongoDB stand-in asks it to verify
``GetCallerIdentity`` requests, as Atlas asks STS.

Thread-safe: every method takes one ``threading.Lock`` (servers may run on a
background thread while tests call in from the main one). Nothing blocks on
I/O. Time comes from the injectable ``clock`` (epoch seconds) so tests can
age credentials without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from pool._internal.scrub import register_secret
from pool.errors import ConfigurationError
from pool.standins.iam import (
    KEY_ALPHABET,
    RETENTION,
    SECRET_ALPHABET,
    CallerIdentity,
    IssuedCredentials,
    RoleConfig,
    WebToken,
    aws_time,
    b64url,
    parse_role_arn,
    rand_string,
    role_arn_of,
    stable_id,
    utc_datetime,
)
from pool.standins.sigv4 import (
    StsError,
    check_scope,
    compute_signature,
    parse_authorization,
    request_time,
    signature_matches,
    signature_mismatch,
)

__all__ = [
    "CallerIdentity",
    "CredentialAuthority",
    "IssuedCredentials",
    "RoleVendor",
    "StsError",
    "aws_time",
    "parse_role_arn",
    "role_arn_of",
]


class RoleVendor:
    """Hands out one role's credentials the way IMDS and the ECS agent do.

    :meth:`current` returns the same credentials until ``refresh_margin``
    seconds before they expire, then mints new ones. Thread-safe.
    """

    def __init__(
        self,
        authority: CredentialAuthority,
        role_arn: str,
        *,
        refresh_margin: float,
        lifetime: float | None = None,
        session_name: str = "standin",
    ) -> None:
        effective = authority.default_lifetime if lifetime is None else lifetime
        if not 0 <= refresh_margin < effective:
            raise ConfigurationError(
                f"refresh_margin {refresh_margin} must be >= 0 and below the lifetime {effective}; "
                "scale it down for short lifetimes (e.g. lifetime/3)"
            )
        self.authority = authority
        self.role_arn = role_arn
        self.refresh_margin = refresh_margin
        self.lifetime = effective
        self.session_name = session_name
        self.minted = 0
        self.last_updated: datetime | None = None
        self._current: IssuedCredentials | None = None
        self._lock = threading.Lock()

    def current(self) -> IssuedCredentials:
        """The credentials to serve now; new ones once inside the refresh margin."""
        with self._lock:
            now = self.authority.clock()
            cur = self._current
            if cur is None or cur.expired_at(now + self.refresh_margin):
                cur = self.authority.mint(self.role_arn, self.session_name, self.lifetime)
                self._current = cur
                self.last_updated = utc_datetime(now)
                self.minted += 1
            return cur


class CredentialAuthority:
    """Mints and verifies the stand-ins' AWS credentials (see the module docstring)."""

    def __init__(
        self,
        *,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        default_lifetime: float = 3600.0,
        min_duration: float = 900.0,
        clock: Callable[[], float] = time.time,
        allow_unknown_roles: bool = False,
    ) -> None:
        if not default_lifetime > 0:
            raise ConfigurationError(
                f"default_lifetime must be > 0 seconds; got {default_lifetime}"
            )
        if not min_duration > 0:
            raise ConfigurationError(f"min_duration must be > 0 seconds; got {min_duration}")
        self.account_id = account_id
        self.region = region
        self.default_lifetime = default_lifetime
        self.min_duration = min_duration
        self.clock = clock
        self.minted = 0
        self._lock = threading.Lock()
        self._creds: dict[str, IssuedCredentials] = {}
        self._tokens: dict[bytes, WebToken] = {}
        # As STS: only roles that exist (and trust the caller) can be assumed. The
        # default role is registered; register others with configure_role().
        self.allow_unknown_roles = allow_unknown_roles
        self._roles: dict[str, RoleConfig] = {self.default_role_arn: RoleConfig()}

    @property
    def default_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/standin-app"

    def now(self) -> datetime:
        """The authority's current time, aware UTC."""
        return utc_datetime(self.clock())

    # -- credentials -------------------------------------------------------

    def mint(
        self,
        role_arn: str | None = None,
        session_name: str = "standin",
        lifetime: float | None = None,
    ) -> IssuedCredentials:
        """New temporary credentials for ``role_arn`` (default :attr:`default_role_arn`).

        Expiry is ``ceil(now + lifetime)`` so the whole-second value the
        endpoints report is exactly the one enforced.
        """
        role = role_arn or self.default_role_arn
        account, name = parse_role_arn(role)
        life = self.default_lifetime if lifetime is None else lifetime
        if life <= 0:
            raise ConfigurationError(f"lifetime must be positive seconds, got {life}")
        now = self.clock()
        creds = IssuedCredentials(
            access_key_id="ASIA" + rand_string(KEY_ALPHABET, 16),
            secret_access_key=rand_string(SECRET_ALPHABET, 40),
            # Real session tokens are long base64 blobs starting like this one.
            session_token="IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(330)).decode(),
            expiration=utc_datetime(math.ceil(now + life)),
            arn=f"arn:aws:sts::{account}:assumed-role/{name}/{session_name}",
            role_arn=role,
            session_name=session_name,
        )
        register_secret(creds.secret_access_key, creds.session_token)
        with self._lock:
            self._prune(now)
            self._creds[creds.access_key_id] = creds
            self.minted += 1
        return creds

    def add_long_term_key(self, user_name: str = "standin-user") -> IssuedCredentials:
        """A long-term IAM user key (``AKIA…``): no session token, never expires."""
        creds = IssuedCredentials(
            access_key_id="AKIA" + rand_string(KEY_ALPHABET, 16),
            secret_access_key=rand_string(SECRET_ALPHABET, 40),
            session_token=None,
            expiration=None,
            arn=f"arn:aws:iam::{self.account_id}:user/{user_name}",
        )
        register_secret(creds.secret_access_key)
        with self._lock:
            self._creds[creds.access_key_id] = creds
        return creds

    def lookup(self, access_key_id: str) -> IssuedCredentials | None:
        with self._lock:
            return self._creds.get(access_key_id)

    def revoke(self, access_key_id: str) -> None:
        """Forget a key: requests signed with it then fail with ``InvalidClientTokenId``."""
        with self._lock:
            self._creds.pop(access_key_id, None)

    def _prune(self, now: float) -> None:
        # Caller holds the lock. Keeps memory bounded under fast rotation.
        stale = [k for k, c in self._creds.items() if c.expired_at(now - RETENTION)]
        for k in stale:
            del self._creds[k]

    def role_vendor(
        self,
        role_arn: str | None = None,
        *,
        refresh_margin: float = 300.0,
        lifetime: float | None = None,
        session_name: str = "standin",
    ) -> RoleVendor:
        """A :class:`RoleVendor` serving ``role_arn`` with IMDS/ECS refresh behaviour."""
        return RoleVendor(
            self,
            role_arn or self.default_role_arn,
            refresh_margin=refresh_margin,
            lifetime=lifetime,
            session_name=session_name,
        )

    # -- roles -------------------------------------------------------------

    def configure_role(
        self,
        role_arn: str,
        *,
        external_id: str | None = None,
        max_session_duration: float = 43200.0,
        trusted: bool = True,
    ) -> None:
        """Register a role, or change its trust: a required ExternalId, its MaxSessionDuration,
        or no trust at all (``trusted=False``). Unregistered roles cannot be assumed."""
        parse_role_arn(role_arn)
        with self._lock:
            self._roles[role_arn] = RoleConfig(external_id, max_session_duration, trusted)

    def role_config(self, role_arn: str) -> RoleConfig | None:
        """The role's trust settings; None for a role never registered (STS: AccessDenied),
        unless the authority was made with ``allow_unknown_roles=True``."""
        with self._lock:
            config = self._roles.get(role_arn)
        if config is None and self.allow_unknown_roles:
            return RoleConfig()
        return config

    # -- web identity --------------------------------------------------------

    def issue_web_identity_token(
        self,
        subject: str = "system:serviceaccount:default:app",
        audience: str = "sts.amazonaws.com",
        lifetime: float = 3600,
    ) -> str:
        """A JWT-shaped token (as an OIDC provider would sign) that STS will accept."""
        now = self.clock()
        header = {"alg": "RS256", "kid": "standin", "typ": "JWT"}
        claims = {
            "iss": "https://oidc.standin.invalid",
            "sub": subject,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": secrets.token_hex(8),
        }
        token = ".".join(
            [
                b64url(json.dumps(header, separators=(",", ":")).encode()),
                b64url(json.dumps(claims, separators=(",", ":")).encode()),
                b64url(secrets.token_bytes(64)),
            ]
        )
        register_secret(token)
        with self._lock:
            self._tokens[hashlib.sha256(token.encode()).digest()] = WebToken(
                subject, audience, now + lifetime
            )
        return token

    def check_web_identity_token(self, token: str) -> str:
        """The token's subject, or ``StsError`` as STS answers a bad token."""
        if token.count(".") != 2:
            raise StsError(
                "InvalidIdentityToken",
                "The ID Token provided is not a valid JWT. (You may see this error if you "
                "sent an Access Token)",
            )
        with self._lock:
            known = self._tokens.get(hashlib.sha256(token.encode()).digest())
        if known is None:
            raise StsError("InvalidIdentityToken", "Couldn't verify the signature of the token")
        now = self.clock()
        if now >= known.expires:
            raise StsError(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now)} must be before the expiration "
                f"date/time {int(known.expires)}",
            )
        if known.audience != "sts.amazonaws.com":
            raise StsError("InvalidIdentityToken", "Incorrect token audience")
        return known.subject

    # -- verification --------------------------------------------------------

    def verify_request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        region: str | None = None,
        service: str = "sts",
    ) -> IssuedCredentials:
        """The credentials that signed this request, or ``StsError`` as STS would answer.

        ``headers`` names are case-insensitive; only those in ``SignedHeaders``
        are signed. ``region=None`` accepts any scope region.
        """
        lower = {k.lower(): v for k, v in headers.items()}
        authorization = lower.get("authorization")
        if not authorization:
            raise StsError(
                "MissingAuthenticationToken", "Request is missing Authentication Token", 403
            )
        auth = parse_authorization(authorization)
        timestamp, when = request_time(lower)
        check_scope(auth, timestamp, when, self.now(), service=service, region=region)
        creds = self.lookup(auth.access_key_id)
        provided = lower.get("x-amz-security-token")
        if creds is None or not _token_matches(creds.session_token, provided):
            raise StsError(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                403,
            )
        if creds.expired_at(self.clock()):
            raise StsError(
                "ExpiredToken", "The security token included in the request is expired", 400
            )
        expected = compute_signature(
            access_key_id=creds.access_key_id,
            secret_access_key=creds.secret_access_key,
            auth=auth,
            timestamp=timestamp,
            method=method,
            path=path or "/",
            headers=lower,
            body=body,
        )
        if not signature_matches(expected, auth.signature):
            raise signature_mismatch()
        return creds

    def caller_identity(self, creds: IssuedCredentials) -> CallerIdentity:
        """``GetCallerIdentity``'s answer for ``creds`` (role id stable per role)."""
        account = creds.arn.split(":")[4]
        if creds.role_arn is not None:
            user_id = f"{stable_id('AROA', creds.role_arn)}:{creds.session_name}"
        else:
            user_id = stable_id("AIDA", creds.arn)
        return CallerIdentity(arn=creds.arn, account=account, user_id=user_id)


def _token_matches(expected: str | None, provided: str | None) -> bool:
    if expected is None:
        return provided is None
    if provided is None:
        return False
    return hmac.compare_digest(expected.encode(), provided.encode())
