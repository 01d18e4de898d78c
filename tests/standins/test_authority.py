"""The credential authority: minting, web identity tokens, refresh vending, SigV4 verification."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from pool.errors import ConfigurationError
from pool.standins.authority import (
    CredentialAuthority,
    IssuedCredentials,
    StsError,
    role_arn_of,
)

BODY = b"Action=GetCallerIdentity&Version=2011-06-15"


def mongo_style_request(
    key: str,
    secret: str,
    token: str | None,
    *,
    region: str = "us-east-1",
    service: str = "sts",
    host: str = "sts.amazonaws.com",
) -> dict[str, str]:
    """Headers of the GetCallerIdentity request PyMongo signs for MONGODB-AWS."""
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=BODY,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": "43",
            "Host": host,
            "X-MongoDB-Server-Nonce": "bm9uY2U=",
            "X-MongoDB-GS2-CB-Flag": "n",
        },
    )
    SigV4Auth(BotoCredentials(key, secret, token), service, region).add_auth(request)
    return dict(request.headers.items())


def sign(creds: IssuedCredentials, **kw: str) -> dict[str, str]:
    return mongo_style_request(
        creds.access_key_id, creds.secret_access_key, creds.session_token, **kw
    )


def rejection(authority: CredentialAuthority, headers: dict[str, str], **kw: object) -> StsError:
    with pytest.raises(StsError) as info:
        authority.verify_request("POST", "/", headers, BODY, **kw)  # type: ignore[arg-type]
    return info.value


def test_mint_shapes_like_real_sts(authority: CredentialAuthority) -> None:
    """Minted credentials look like STS's: ASIA key, 40-char secret, long token, role ARN."""
    creds = authority.mint(session_name="app")
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", creds.access_key_id)
    assert len(creds.secret_access_key) == 40
    assert creds.session_token is not None and len(creds.session_token) > 300
    assert creds.arn == "arn:aws:sts::123456789012:assumed-role/standin-app/app"
    assert creds.role_arn == authority.default_role_arn
    assert creds.expiration is not None and creds.expiration.tzinfo is UTC
    assert creds.expiration.timestamp() - authority.clock() == pytest.approx(3600, abs=1)
    assert authority.lookup(creds.access_key_id) == creds


def test_long_term_key_has_no_token_and_no_expiry(authority: CredentialAuthority) -> None:
    """add_long_term_key gives an AKIA user key: no session token, never expires."""
    creds = authority.add_long_term_key("alice")
    assert creds.access_key_id.startswith("AKIA")
    assert creds.session_token is None and creds.expiration is None
    assert creds.arn == "arn:aws:iam::123456789012:user/alice"


def test_repr_and_errors_hide_secrets(authority: CredentialAuthority) -> None:
    """Neither repr nor a rejection message contains the secret key or the token."""
    creds = authority.mint()
    assert creds.secret_access_key not in repr(creds)
    assert creds.session_token is not None and creds.session_token not in repr(creds)
    headers = mongo_style_request(creds.access_key_id, "x" * 40, creds.session_token)
    err = rejection(authority, headers)
    assert creds.session_token not in str(err) and creds.secret_access_key not in str(err)


def test_bad_role_arn_is_a_configuration_error(authority: CredentialAuthority) -> None:
    """Minting for something that is not a role ARN says what form is expected."""
    with pytest.raises(ConfigurationError, match="arn:aws:iam::<12-digit account>:role"):
        authority.mint("arn:aws:iam::123:user/bob")


def test_role_arn_of_maps_assumed_role_to_role() -> None:
    """An assumed-role ARN maps to its IAM role ARN; other ARNs are returned unchanged."""
    assert role_arn_of("arn:aws:sts::111122223333:assumed-role/app/sess") == (
        "arn:aws:iam::111122223333:role/app"
    )
    user = "arn:aws:iam::111122223333:user/bob"
    assert role_arn_of(user) == user


def test_web_identity_token_round_trip(authority: CredentialAuthority, clock: Any) -> None:
    """Issued tokens check out until they expire, then fail as STS says (ExpiredTokenException)."""
    token = authority.issue_web_identity_token(subject="system:serviceaccount:ns:sa", lifetime=60)
    assert token.count(".") == 2
    assert authority.check_web_identity_token(token) == "system:serviceaccount:ns:sa"
    clock.advance(61)
    with pytest.raises(StsError) as info:
        authority.check_web_identity_token(token)
    assert info.value.code == "ExpiredTokenException" and info.value.status == 400
    assert token not in str(info.value)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
def test_unknown_web_identity_token_is_invalid(authority: CredentialAuthority, token: str) -> None:
    """Malformed or never-issued tokens are InvalidIdentityToken."""
    with pytest.raises(StsError) as info:
        authority.check_web_identity_token(token)
    assert info.value.code == "InvalidIdentityToken"


def test_wrong_audience_is_invalid(authority: CredentialAuthority) -> None:
    """A token for another audience is refused with 'Incorrect token audience'."""
    token = authority.issue_web_identity_token(audience="other")
    with pytest.raises(StsError, match="Incorrect token audience"):
        authority.check_web_identity_token(token)


def test_role_vendor_serves_same_until_margin(authority: CredentialAuthority, clock: Any) -> None:
    """Like IMDS/ECS: the same credentials until `margin` before expiry, then new ones."""
    clock.now = 1_700_000_000.0  # whole second: expiry is exactly now + 6
    vendor = authority.role_vendor(refresh_margin=2, lifetime=6)
    first = vendor.current()
    clock.advance(3.5)
    assert vendor.current() is first
    clock.advance(1.0)  # now within 2 s of expiry
    second = vendor.current()
    assert second.access_key_id != first.access_key_id
    assert vendor.minted == 2


def test_role_vendor_rejects_margin_not_below_lifetime(authority: CredentialAuthority) -> None:
    """A margin as long as the lifetime would mint on every request: refused with advice."""
    with pytest.raises(ConfigurationError, match="below the lifetime"):
        authority.role_vendor(refresh_margin=10, lifetime=10)


def test_verify_accepts_mongodb_style_request(authority: CredentialAuthority) -> None:
    """The request PyMongo signs (nonce and cb-flag headers) verifies to its credentials."""
    creds = authority.mint()
    verified = authority.verify_request("POST", "/", sign(creds), BODY, region="us-east-1")
    assert verified == creds
    identity = authority.caller_identity(verified)
    assert identity.arn == creds.arn and identity.account == "123456789012"
    assert identity.user_id.startswith("AROA") and identity.user_id.endswith(":standin")


def test_verify_accepts_long_term_key(authority: CredentialAuthority) -> None:
    """A long-term key signs without a session token and verifies."""
    creds = authority.add_long_term_key()
    assert authority.verify_request("POST", "/", sign(creds), BODY) == creds


def test_header_names_are_case_insensitive(authority: CredentialAuthority) -> None:
    """Verification does not depend on the case of header names."""
    creds = authority.mint()
    headers = {k.upper(): v for k, v in sign(creds).items()}
    assert authority.verify_request("POST", "/", headers, BODY) == creds


def test_wrong_secret_is_signature_mismatch(authority: CredentialAuthority) -> None:
    """A signature made with the wrong secret is SignatureDoesNotMatch (403)."""
    creds = authority.mint()
    err = rejection(
        authority, mongo_style_request(creds.access_key_id, "w" * 40, creds.session_token)
    )
    assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)


def test_tampered_signed_header_is_signature_mismatch(authority: CredentialAuthority) -> None:
    """Changing a signed header (the server nonce) after signing breaks the signature."""
    headers = sign(authority.mint())
    headers["X-MongoDB-Server-Nonce"] = "b3RoZXI="
    assert rejection(authority, headers).code == "SignatureDoesNotMatch"


def test_tampered_body_is_signature_mismatch(authority: CredentialAuthority) -> None:
    """The body is part of the signature."""
    headers = sign(authority.mint())
    with pytest.raises(StsError, match="SignatureDoesNotMatch"):
        authority.verify_request("POST", "/", headers, BODY + b"&x=1")


def test_missing_signed_header_is_signature_mismatch(authority: CredentialAuthority) -> None:
    """A header listed in SignedHeaders but absent from the request cannot verify."""
    headers = sign(authority.mint())
    del headers["X-MongoDB-GS2-CB-Flag"]
    assert rejection(authority, headers).code == "SignatureDoesNotMatch"


def test_unknown_key_is_invalid_client_token(authority: CredentialAuthority) -> None:
    """A key the authority never issued (or revoked) is InvalidClientTokenId (403)."""
    creds = authority.mint()
    authority.revoke(creds.access_key_id)
    err = rejection(authority, sign(creds))
    assert (err.code, err.status) == ("InvalidClientTokenId", 403)


@pytest.mark.parametrize("token", ["other", None])
def test_wrong_or_missing_token_is_invalid_client_token(
    authority: CredentialAuthority, token: str | None
) -> None:
    """A temporary key with a wrong or no session token is InvalidClientTokenId."""
    creds = authority.mint()
    other = authority.mint().session_token if token else None
    headers = mongo_style_request(creds.access_key_id, creds.secret_access_key, other)
    assert rejection(authority, headers).code == "InvalidClientTokenId"


def test_token_on_long_term_key_is_invalid_client_token(authority: CredentialAuthority) -> None:
    """A long-term key presented with a session token is InvalidClientTokenId."""
    creds = authority.add_long_term_key()
    headers = mongo_style_request(creds.access_key_id, creds.secret_access_key, "tok")
    assert rejection(authority, headers).code == "InvalidClientTokenId"


def test_expired_credentials_are_expired_token(authority: CredentialAuthority, clock: Any) -> None:
    """Credentials past their expiry are ExpiredToken (400), even with a good signature."""
    creds = authority.mint(lifetime=30)
    headers = sign(creds)
    clock.advance(31)
    err = rejection(authority, headers)
    assert (err.code, err.status) == ("ExpiredToken", 400)


@pytest.mark.parametrize(
    ("skew", "words"), [(16 * 60, "Signature expired"), (-16 * 60, "not yet current")]
)
def test_clock_skew_is_signature_mismatch(
    authority: CredentialAuthority, clock: Any, skew: float, words: str
) -> None:
    """More than 15 minutes between X-Amz-Date and the server clock is SignatureDoesNotMatch."""
    headers = sign(authority.mint(lifetime=7200))
    clock.advance(skew)
    err = rejection(authority, headers)
    assert err.code == "SignatureDoesNotMatch" and words in err.message


def test_skew_within_fifteen_minutes_is_accepted(
    authority: CredentialAuthority, clock: Any
) -> None:
    """Fourteen minutes of skew still verifies, as on real STS."""
    creds = authority.mint(lifetime=7200)
    headers = sign(creds)
    clock.advance(14 * 60)
    assert authority.verify_request("POST", "/", headers, BODY) == creds


@pytest.mark.parametrize(
    ("kw", "verify_kw", "words"),
    [
        ({"service": "s3"}, {}, "correct service: 'sts'"),
        ({"region": "eu-west-1"}, {"region": "us-east-1"}, "valid region"),
    ],
)
def test_wrong_scope_is_signature_mismatch(
    authority: CredentialAuthority, kw: dict[str, str], verify_kw: dict[str, str], words: str
) -> None:
    """A credential scope for another service or region is SignatureDoesNotMatch."""
    err = rejection(authority, sign(authority.mint(), **kw), **verify_kw)
    assert err.code == "SignatureDoesNotMatch" and words in err.message


def test_scope_date_and_terminator_are_checked(authority: CredentialAuthority) -> None:
    """A scope date other than X-Amz-Date's, or a bad terminator, is SignatureDoesNotMatch."""
    headers = sign(authority.mint())
    good = headers["Authorization"]
    date = headers["X-Amz-Date"][:8]
    headers["Authorization"] = good.replace(f"/{date}/", "/20000101/")
    assert "Date in Credential scope" in rejection(authority, headers).message
    headers["Authorization"] = good.replace("aws4_request", "aws5_request")
    assert "valid terminator" in rejection(authority, headers).message


def test_missing_authorization_is_missing_authentication_token(
    authority: CredentialAuthority,
) -> None:
    """No Authorization header at all is MissingAuthenticationToken (403)."""
    headers = sign(authority.mint())
    del headers["Authorization"]
    err = rejection(authority, headers)
    assert (err.code, err.status) == ("MissingAuthenticationToken", 403)


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, Signature=00",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=;;, Signature=0",
    ],
)
def test_malformed_authorization_is_incomplete_signature(
    authority: CredentialAuthority, value: str
) -> None:
    """A malformed Authorization header is IncompleteSignature (400), never a crash."""
    headers = sign(authority.mint())
    headers["Authorization"] = value
    err = rejection(authority, headers)
    assert (err.code, err.status) == ("IncompleteSignature", 400)


def test_missing_date_is_incomplete_signature(authority: CredentialAuthority) -> None:
    """Without X-Amz-Date or Date the request is IncompleteSignature."""
    headers = sign(authority.mint())
    del headers["X-Amz-Date"]
    assert rejection(authority, headers).code == "IncompleteSignature"


def test_unsigned_host_is_refused(authority: CredentialAuthority) -> None:
    """STS requires Host to be signed."""
    headers = sign(authority.mint())
    headers["Authorization"] = headers["Authorization"].replace("host;", "")
    err = rejection(authority, headers)
    assert err.code == "SignatureDoesNotMatch" and "'Host'" in err.message


def test_expired_credentials_are_pruned_eventually(
    authority: CredentialAuthority, clock: Any
) -> None:
    """Expired credentials are remembered (to answer ExpiredToken) but not forever."""
    old = authority.mint(lifetime=10)
    clock.advance(20)
    authority.mint()
    assert authority.lookup(old.access_key_id) is not None
    clock.advance(2 * 3600)
    authority.mint()
    assert authority.lookup(old.access_key_id) is None


def test_expiration_reported_is_expiration_enforced(
    authority: CredentialAuthority, clock: Any
) -> None:
    """Expiry is whole seconds, so the '...Z' string endpoints report is the one enforced."""
    clock.now = 1_700_000_000.25
    creds = authority.mint(lifetime=10)
    assert creds.expiration == datetime.fromtimestamp(1_700_000_011, UTC)
    assert creds.container_json()["Expiration"] == "2023-11-14T22:13:31Z"


def test_verify_accepts_signed_get_with_query(authority: CredentialAuthority) -> None:
    """A header-signed GET with the action in the query string verifies (query is signed)."""
    creds = authority.mint()
    url = "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(method="GET", url=url, headers={"Host": "sts.amazonaws.com"})
    SigV4Auth(
        BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
        "sts",
        "us-east-1",
    ).add_auth(request)
    headers = dict(request.headers.items())
    path = "/?Action=GetCallerIdentity&Version=2011-06-15"
    assert authority.verify_request("GET", path, headers, b"") == creds
    with pytest.raises(StsError, match="SignatureDoesNotMatch"):
        authority.verify_request("GET", path + "&Extra=1", headers, b"")
