"""What the AWS stand-ins hand out and check: credential records, identities, ARNs.

Plain records and pure functions, no state: the
:class:`~pool.standins.authority.CredentialAuthority` keeps the state.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pool.errors import ConfigurationError

__all__ = [
    "CallerIdentity",
    "IssuedCredentials",
    "RoleConfig",
    "aws_time",
    "parse_role_arn",
    "role_arn_of",
]

KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # AWS key ids are base32-like
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
RETENTION = 3600.0  # keep expired credentials this long so STS can say ExpiredToken


def rand_string(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def utc_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def aws_time(dt: datetime) -> str:
    """``2024-01-02T03:04:05Z``: the timestamp form IMDS, ECS and STS use."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedCredentials:
    """A credential set the authority minted. ``repr`` hides the secret and the token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(repr=False)
    expiration: datetime | None
    arn: str
    role_arn: str | None = None
    session_name: str | None = None

    def expired_at(self, epoch: float) -> bool:
        """True when ``epoch`` (seconds) is at or past the expiration."""
        return self.expiration is not None and epoch >= self.expiration.timestamp()

    def container_json(self) -> dict[str, str]:
        """The ECS / EKS Pod Identity agent's JSON document for these credentials."""
        doc = {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token or "",
            "Expiration": aws_time(self.expiration) if self.expiration else "",
        }
        if self.role_arn:
            doc["RoleArn"] = self.role_arn
        return doc

    def imds_json(self, last_updated: datetime) -> dict[str, str]:
        """The IMDS ``security-credentials/<role>`` document for these credentials."""
        return {
            "Code": "Success",
            "LastUpdated": aws_time(last_updated),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token or "",
            "Expiration": aws_time(self.expiration) if self.expiration else "",
        }


@dataclass(frozen=True)
class CallerIdentity:
    """What ``GetCallerIdentity`` answers."""

    arn: str
    account: str
    user_id: str


@dataclass(frozen=True)
class RoleConfig:
    """Per-role trust settings of a registered role (unregistered roles are refused)."""

    external_id: str | None = field(default=None, repr=False)
    max_session_duration: float = 43200.0
    trusted: bool = True


@dataclass(frozen=True)
class WebToken:
    subject: str
    audience: str
    expires: float


def role_arn_of(assumed_role_arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/S`` -> ``arn:aws:iam::A:role/R``; other ARNs unchanged."""
    parts = assumed_role_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        pieces = parts[5].split("/")
        if len(pieces) >= 3:
            return f"arn:{parts[1]}:iam::{parts[4]}:role/{pieces[1]}"
    return assumed_role_arn


def parse_role_arn(role_arn: str) -> tuple[str, str]:
    """(account, role name) of ``arn:aws:iam::<acct>:role/[path/]<name>``."""
    parts = role_arn.split(":", 5)
    if (
        len(parts) != 6
        or parts[0] != "arn"
        or parts[2] != "iam"
        or not (parts[4].isdigit() and len(parts[4]) == 12)
        or not parts[5].startswith("role/")
        or not parts[5].rsplit("/", 1)[-1]
    ):
        raise ConfigurationError(
            f"{role_arn[:200]!r} is not a role ARN; "
            "expected arn:aws:iam::<12-digit account>:role/<name>"
        )
    return parts[4], parts[5].rsplit("/", 1)[-1]


def stable_id(prefix: str, seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(KEY_ALPHABET[b % 32] for b in digest[:17])
