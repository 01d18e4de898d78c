"""The settings and driver options :class:`pool.ClientPool` accepts, checked up front.

Everything here is pure: it reads the URI and keyword options and either
raises :class:`pool.ConfigurationError` naming the fix, or builds the
keyword arguments for a driver client. Misconfiguration should fail when the
pool is constructed, not at the first warm-up, with a message that says what
to change (PyMongo's own errors are terse and may echo option values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pool.errors import ConfigurationError

__all__ = [
    "DEFAULT_WARM_SPREAD",
    "check_client_options",
    "check_settings",
    "check_uri_options",
    "client_kwargs",
    "secrets_of",
]

#: Seconds over which a rotation's warm-up opens its connections (``warm_spread``).
DEFAULT_WARM_SPREAD = 5.0

# Options the pool owns: credentials come from the cache, never from the user.
_RESERVED = {"username", "password", "authmechanism", "authmechanismproperties", "authsource"}
_USERINFO = re.compile(r"^[a-z+]+://[^/?#]*@", re.IGNORECASE)
_SECRET_NAME = re.compile(r"password|secret|token", re.IGNORECASE)


def check_settings(
    uri: str,
    *,
    warm: int,
    drain_timeout: float | None,
    warmup_timeout: float,
    close_timeout: float,
    options: Mapping[str, Any],
    max_per_member: int | None = None,
    warm_spread: float = 0.0,
) -> None:
    """Raise :class:`pool.ConfigurationError` for any setting the pool cannot work with."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigurationError("uri must be a mongodb:// or mongodb+srv:// connection string")
    if _USERINFO.match(uri):
        raise ConfigurationError(
            "the URI carries a user name or password; remove it: the pool passes the AWS "
            "credentials to the driver as keyword options"
        )
    if not isinstance(warm, int) or warm < 0:
        raise ConfigurationError("warm_connections must be an integer >= 0")
    if drain_timeout is not None and drain_timeout < 0:
        raise ConfigurationError("drain_timeout must be >= 0 seconds, or None")
    if not warmup_timeout > 0:
        raise ConfigurationError(f"warmup_timeout must be > 0 seconds; got {warmup_timeout!r}")
    if not 0 <= warm_spread <= warmup_timeout / 2:
        raise ConfigurationError(
            f"warm_spread must be between 0 and half of warmup_timeout ({warmup_timeout / 2:g} "
            f"s), so a paced warm-up still fits its deadline; got {warm_spread!r}"
        )
    if not close_timeout >= 0:
        raise ConfigurationError(f"close_timeout must be >= 0 seconds; got {close_timeout!r}")
    check_uri_options(uri)
    check_client_options(options)
    _check_pool_size(uri, warm, options)
    _check_cap(uri, warm, options, max_per_member)


def check_uri_options(uri: str) -> None:
    """Refuse credential-bearing or contradicting options in the URI's query.

    The MongoDB auth specification's connection-string tests require a URI
    with ``authMechanismProperties=AWS_SESSION_TOKEN:...`` to be refused
    (source/auth/tests/connection-string.json, "should throw an exception if
    AWS_SESSION_TOKEN provided (MONGODB-AWS)"); a
    token there would reach PyMongo and fight the pool's own credentials.
    ``authMechanism``/``authSource`` may only repeat what the pool sets
    (``MONGODB-AWS``, ``$external``).
    """
    for key, value in parse_qsl(urlsplit(uri).query, keep_blank_values=True):
        lowered = key.lower()
        if lowered == "authmechanismproperties":
            names = sorted({p.partition(":")[0] for p in value.split(",") if p})
            raise ConfigurationError(
                f"the URI sets authMechanismProperties ({', '.join(names) or 'empty'}; values "
                "not shown): the pool sets AWS_SESSION_TOKEN from the AWS credentials; "
                "remove authMechanismProperties from the URI"
            )
        if _SECRET_NAME.search(key):
            raise ConfigurationError(
                f"the URI carries the secret option {key} (value not shown); remove it from "
                "the URI and pass it as a ClientPool(...) keyword option"
            )
        if lowered == "authmechanism" and value.upper() != "MONGODB-AWS":
            raise ConfigurationError(
                f"the URI sets authMechanism={value!r}, but the pool authenticates with "
                "MONGODB-AWS; remove authMechanism from the URI (or set it to MONGODB-AWS)"
            )
        if lowered == "authsource" and value != "$external":
            raise ConfigurationError(
                f"the URI sets authSource={value!r}, but MONGODB-AWS users live in $external; "
                "remove authSource from the URI (or set it to $external)"
            )


def check_client_options(options: Mapping[str, Any]) -> None:
    """Refuse the credential options: the pool sets them from the cache."""
    reserved = sorted(k for k in options if k.lower() in _RESERVED)
    if reserved:
        raise ConfigurationError(
            f"client option(s) {reserved} are set by the pool from the AWS credentials; "
            "remove them from the ClientPool(...) keyword arguments"
        )


def _int_option(uri: str, options: Mapping[str, Any], name: str) -> int | None:
    """Integer option ``name`` (case-insensitive; keyword over URI); None if unset or odd."""
    lowered = name.lower()
    values = [v for k, v in options.items() if k.lower() == lowered]
    if not values:
        values = [v for k, v in parse_qsl(urlsplit(uri).query) if k.lower() == lowered]
    try:
        return None if not values or values[-1] is None else int(values[-1])
    except (TypeError, ValueError):
        return None  # PyMongo's own validation reports it


def _check_pool_size(uri: str, warm: int, options: Mapping[str, Any]) -> None:
    """Each client keeps ``max(warm_connections, minPoolSize)`` connections: they must fit."""
    max_size = _int_option(uri, options, "maxPoolSize")
    if not max_size:  # unset, or 0: no limit
        return
    if warm > max_size:
        raise ConfigurationError(
            f"warm_connections={warm} is larger than maxPoolSize={max_size}: a client cannot "
            "keep more connections warm than its pool holds; lower warm_connections or "
            "raise maxPoolSize"
        )
    min_size = _int_option(uri, options, "minPoolSize") or 0
    if min_size > max_size:
        raise ConfigurationError(
            f"minPoolSize={min_size} is larger than maxPoolSize={max_size}; lower minPoolSize"
        )


_PYMONGO_MAX_POOL_SIZE = 100  # PyMongo's maxPoolSize default (pymongo/common.py MAX_POOL_SIZE)


def _check_cap(uri: str, warm: int, options: Mapping[str, Any], cap: int | None) -> None:
    """``max_connections_per_member`` must leave room for a full client and the next one.

    During a rotation the old client may hold ``maxPoolSize`` connections to a
    member while the next one needs at least one (the ping that proves its
    credentials), or ``minPoolSize`` (which PyMongo fills on its own).
    """
    if cap is None:
        return
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ConfigurationError(
            f"max_connections_per_member must be an integer >= 1, or None; got {cap!r}"
        )
    max_size = _int_option(uri, options, "maxPoolSize")
    size, named = (max_size, "") if max_size is not None else (_PYMONGO_MAX_POOL_SIZE, " (default)")
    if size == 0:
        raise ConfigurationError(
            "max_connections_per_member needs a bounded pool: maxPoolSize=0 (no limit) lets one "
            "client alone open any number of connections; set maxPoolSize"
        )
    min_size = _int_option(uri, options, "minPoolSize") or 0
    room = max(1, min_size)
    if cap < size + room:
        what = f"minPoolSize={min_size}" if min_size > 1 else "one (its ping)"
        raise ConfigurationError(
            f"max_connections_per_member={cap} leaves no room for a rotation: the old client may "
            f"hold maxPoolSize={size}{named} connections to a member while the next needs {what}; "
            f"raise the cap to {size + room} or pass maxPoolSize={max(1, cap - room)}"
        )
    if cap < warm:
        raise ConfigurationError(
            f"max_connections_per_member={cap} is below warm_connections={warm}; lower "
            "warm_connections or raise the cap"
        )


def client_kwargs(
    credential_options: Mapping[str, Any],
    options: Mapping[str, Any],
    listener: Any,
) -> dict[str, Any]:
    """Keyword arguments for one driver client.

    The user's ``options`` plus ``listener`` (after the user's listeners) and
    the credential options. ``minPoolSize`` stays the user's (warm-up raises
    it only while it fills; see :mod:`pool.client_pool.filling`).
    """
    check_client_options(options)
    kwargs = dict(options)
    listeners = list(kwargs.pop("event_listeners", None) or [])
    kwargs["event_listeners"] = [*listeners, listener]
    kwargs.update(credential_options)
    return kwargs


def secrets_of(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """What to scrub from a client's error text: the credentials' secret parts and the
    values of options named like secrets (``tlsCertificateKeyFilePassword``, ...)."""
    props = kwargs.get("authMechanismProperties") or {}
    found = [kwargs.get("password"), props.get("AWS_SESSION_TOKEN")]
    found += [v for k, v in kwargs.items() if _SECRET_NAME.search(k)]
    return tuple(s for s in found if isinstance(s, str) and s)
