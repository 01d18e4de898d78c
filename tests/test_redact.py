"""Text from third parties is made safe before it reaches a log, status() or a message."""

from __future__ import annotations

from pool._internal.redact import describe, redact

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6example"
URLSAFE = "9AcWBveqawBLpI1wN8pgFOUb6SFbJsiPARF0v-BRcVw"


def test_secret_shaped_runs_are_hidden() -> None:
    """Secret keys, session tokens and url-safe auth tokens vanish from arbitrary text."""
    text = redact(f"boom: secret={SECRET} tok {TOKEN} hdr={URLSAFE}")
    assert SECRET not in text and TOKEN not in text and URLSAFE not in text
    assert text.startswith("boom: ")


def test_uri_passwords_and_token_queries_are_hidden() -> None:
    """A URI's userinfo and token-like query values are masked, the rest stays readable."""
    text = redact("GET https://user:hunter2@vault.local/v1/x?role=app&X-Vault-Token=s.abc failed")
    assert "hunter2" not in text and "s.abc" not in text
    assert "https://***@vault.local/v1/x?role=app&X-Vault-Token=***" in text


def test_names_arns_and_uuids_stay_readable() -> None:
    """Variable names, ARNs and UUIDs are not mistaken for secrets."""
    text = (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE arn:aws:iam::123456789012:role/standin-app "
        "/v2/credentials/9cd5a616-a668-4ee1-b538-8b4da194e103"
    )
    assert redact(text) == text


def test_known_secrets_are_replaced_even_when_short() -> None:
    """Secrets passed explicitly are removed whatever their shape."""
    assert redact("pw=abc123 here", "abc123") == "pw=*** here"


def test_describe_names_the_class_and_cuts_long_text() -> None:
    """describe() gives 'Class: message', redacted and bounded."""
    text = describe(RuntimeError(f"x {SECRET} " + "y" * 1000), limit=50)
    assert text.startswith("RuntimeError: x <redacted> ") and len(text) <= 64


def test_hex_tokens_are_hidden() -> None:
    """A 32-hex-char token (an API key, a digest) from a custom source's error is hidden."""
    token = "0123456789abcdef0123456789abcdef"
    assert token not in redact(f"vault refused token {token}")
    assert token.upper() not in redact(f"vault refused token {token.upper()}")


def test_dotted_segment_tokens_are_hidden_host_names_are_not() -> None:
    """Dot-separated 16-char segments (JWT-like) vanish; host names with short labels stay."""
    token = "abcdefghij123456.ABCDEFGHIJ654321.0123456789abcdef"
    vault = "hvs.CAESIJlWh1234567890ab.GiQKHGh2cy5abcdefghijklmnop"
    text = redact(f"refused {token} and {vault}")
    assert "abcdefghij123456" not in text and "CAESIJlWh1234567890ab" not in text
    host = "cluster0-shard-00-00.abcde.mongodb.net:27017 ec2-3-80-1-2.compute-1.amazonaws.com"
    assert redact(host) == host


def test_named_secrets_in_free_text_are_hidden() -> None:
    """password=..., "SecretAccessKey": "...", Authorization: Bearer ... lose their values."""
    text = redact(
        'auth failed: password=hunter2 user=app {"SecretAccessKey": "abc/DEF"} '
        "Authorization: Bearer abc.def pwd: s3cret"
    )
    assert "hunter2" not in text and "abc/DEF" not in text and "abc.def" not in text
    assert "s3cret" not in text
    assert "user=app" in text and "password=***" in text


def test_named_secret_false_positives_stay_readable() -> None:
    """File-variable names, prose ('token: expired') and empty values are not hidden."""
    text = (
        "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks/token session token: expired "
        "token=None token_expiration=3600"
    )
    assert redact(text) == text


def test_access_key_ids_become_hints() -> None:
    """A whole access key id is shown as a hint only (first 4 and last 4 characters)."""
    assert redact("key ASIAY34FZKBOKMUTVV7A refused") == "key ASIA…VV7A refused"
