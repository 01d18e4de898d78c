"""IAM role ARNs, checked before any request: ``arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME``.

STS answers a malformed or non-role ARN with an error the caller then has to
interpret ("DurationSeconds above the role's maximum?"); checking the shape
first names the wrong part. Rules (IAM identifiers reference): partition
``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b``, ``aws-iso-e``,
``aws-iso-f``, ``aws-eusc``; service ``iam``; no region; a 12-digit account;
resource ``role/`` with an optional path and a name of 1-64 characters of
``[\\w+=,.@-]``; at most 2048 characters in all.
"""

from __future__ import annotations

import re

from pool.errors import ConfigurationError

__all__ = ["check_role_arn"]

_PARTITION = re.compile(r"^aws(-cn|-us-gov|-iso(-[a-z])?|-eusc)?$")
_ACCOUNT = re.compile(r"^\d{12}$")
_PATH = re.compile(r"^/([\x21-\x7e]+/)*$")
_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
_EXAMPLE = "arn:aws:iam::123456789012:role/NAME"


def _problem(arn: str) -> str | None:
    """What is wrong with ``arn``, or None."""
    if len(arn) > 2048:
        return f"is {len(arn)} characters long (IAM allows 2048)"
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return "is not an ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
    _, partition, service, region, account, resource = parts
    if not _PARTITION.match(partition):
        return f"has partition {partition!r}; expected aws, aws-cn, aws-us-gov or aws-iso*"
    if service != "iam":
        hint = " (an assumed-role session ARN; use the role's IAM ARN)" if service == "sts" else ""
        return f"has service {service!r}, not 'iam'{hint}"
    if region:
        return f"has region {region!r}; IAM ARNs have none (arn:aws:iam::...)"
    if not _ACCOUNT.match(account):
        return f"has account {account!r}; an AWS account id is 12 digits"
    kind, _, rest = resource.partition("/")
    if kind != "role" or not rest:
        return f"names a {kind!r} resource, not a role (resource must start with role/)"
    path, _, name = ("/" + rest).rpartition("/")
    if not _PATH.match(path + "/"):
        return f"has an invalid role path {path + '/'!r}"
    if not _NAME.match(name):
        return f"has role name {name!r}; 1-64 characters of letters, digits and +=,.@_-"
    return None


def check_role_arn(role_arn: object, *, source: str, origin: str = "role_arn") -> str:
    """``role_arn`` if it is an IAM role ARN, else :class:`pool.ConfigurationError`.

    ``origin`` names where the value came from (``AWS_ROLE_ARN``, the
    ``role_arn`` argument), so the message says exactly what to fix.
    """
    if not isinstance(role_arn, str):
        raise ConfigurationError(
            f"{source}: {origin} must be a string like {_EXAMPLE}, not {type(role_arn).__name__}"
        )
    problem = _problem(role_arn)
    if problem is not None:
        raise ConfigurationError(
            f"{source}: {origin} {role_arn!r} {problem}; set {origin} to a role ARN like {_EXAMPLE}"
        )
    return role_arn
