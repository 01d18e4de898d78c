"""Credentials: immutable, secret-free reprs, expiry on the monotonic clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from pool import ConfigurationError, Credentials

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"


def make(ttl: float | None = 60.0, **kw: object) -> Credentials:
    exp = None if ttl is None else datetime.now(UTC) + timedelta(seconds=ttl)
    fields: dict[str, object] = {
        "access_key_id": "ASIAEXAMPLE1234WXYZ",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        "expiration": exp,
        "source": "test",
    }
    fields.update(kw)
    return Credentials(**fields)  # type: ignore[arg-type]


def test_repr_and_str_hide_secrets() -> None:
    """Neither repr nor str shows the secret key or the session token."""
    c = make()
    for text in (repr(c), str(c), f"{c}", repr([c])):
        assert SECRET not in text and TOKEN not in text
        assert "ASIA…WXYZ" in text


def test_immutable() -> None:
    """Credentials cannot be changed after construction."""
    c = make()
    with pytest.raises(AttributeError):
        c.secret_access_key = "x"  # type: ignore[misc]


def test_remaining_uses_monotonic_deadline() -> None:
    """Remaining lifetime is pinned to the monotonic clock at construction."""
    c = make(ttl=100.0)
    now = time.monotonic()
    left = c.remaining(now)
    assert left is not None and 99.0 < left <= 100.0
    assert c.remaining(now + 100.5) is not None and c.remaining(now + 100.5) < 0  # type: ignore[operator]
    assert c.expired(now + 100.5) and not c.expired(now)
    assert c.expired(now, margin=100.0)


def test_long_term_keys_never_expire() -> None:
    """Keys without an expiration report no remaining time and never expire."""
    c = make(ttl=None, session_token=None)
    assert c.remaining() is None and not c.expired(margin=1e9) and not c.temporary


def test_equality_is_by_keys() -> None:
    """The same keys fetched twice compare equal: that is not a rotation."""
    a, b = make(), make(ttl=30.0, source="other")
    assert a == b and hash(a) == hash(b) and a.same_keys(b)
    assert a != make(session_token="other-token")


def test_client_options_are_keywords() -> None:
    """Driver options carry the credentials as keywords for MONGODB-AWS."""
    opts = make().client_options()
    assert opts == {
        "username": "ASIAEXAMPLE1234WXYZ",
        "password": SECRET,
        "authMechanism": "MONGODB-AWS",
        "authSource": "$external",
        "authMechanismProperties": {"AWS_SESSION_TOKEN": TOKEN},
    }
    assert "authMechanismProperties" not in make(ttl=None, session_token=None).client_options()


@pytest.mark.parametrize(
    "kw",
    [
        {"access_key_id": ""},
        {"secret_access_key": ""},
        {"session_token": ""},
        {"expiration": datetime(2030, 1, 1)},
        {"expiration": "2030-01-01"},
    ],
)
def test_bad_input_is_a_configuration_error(kw: dict[str, object]) -> None:
    """Malformed fields raise ConfigurationError naming the field, without secrets."""
    with pytest.raises(ConfigurationError) as info:
        make(**kw)
    assert SECRET not in str(info.value) and TOKEN not in str(info.value)
