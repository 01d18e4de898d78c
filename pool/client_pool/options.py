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

__all__ = ["check_client_options", "check_settings", "client_kwargs", "secrets_of"]

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
    if warmup_timeout <= 0 or close_timeout < 0:
        raise ConfigurationError("warmup_timeout must be > 0 and close_timeout >= 0 seconds")
    check_client_options(options)
    _check_pool_size(uri, warm, options)


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
