"""The STS stand-in as boto3 sees it: success and every rejection STS gives.

boto3 blocks, so the stand-ins run on a background loop (``threaded_aws``).
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pool.standins.authority import CredentialAuthority, IssuedCredentials
from pool.standins.aws import AwsStandIns

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
pytestmark = pytest.mark.usefixtures("clean_aws_env")


def sts_client(
    aws: AwsStandIns,
    key: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    region: str = "us-east-1",
) -> Any:
    session = boto3.Session(
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )
    return session.client("sts", endpoint_url=aws.sts_url, config=NO_RETRY)


def client_for(aws: AwsStandIns, creds: IssuedCredentials) -> Any:
    return sts_client(aws, creds.access_key_id, creds.secret_access_key, creds.session_token)


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def test_get_caller_identity_with_valid_credentials(threaded_aws: AwsStandIns) -> None:
    """boto3's GetCallerIdentity with minted credentials returns the assumed-role identity."""
    creds = threaded_aws.authority.mint(session_name="tester")
    answer = client_for(threaded_aws, creds).get_caller_identity()
    assert answer["Arn"] == "arn:aws:sts::123456789012:assumed-role/standin-app/tester"
    assert answer["Account"] == "123456789012"
    assert answer["UserId"].endswith(":tester")
    assert uuid.UUID(answer["ResponseMetadata"]["RequestId"])


def test_get_caller_identity_with_long_term_key(threaded_aws: AwsStandIns) -> None:
    """A long-term user key (no token) is accepted and reports the user ARN."""
    creds = threaded_aws.authority.add_long_term_key("alice")
    answer = client_for(threaded_aws, creds).get_caller_identity()
    assert answer["Arn"] == "arn:aws:iam::123456789012:user/alice"


def test_wrong_secret_is_signature_does_not_match(threaded_aws: AwsStandIns) -> None:
    """A wrong secret key gives SignatureDoesNotMatch (403)."""
    creds = threaded_aws.authority.mint()
    client = sts_client(threaded_aws, creds.access_key_id, "x" * 40, creds.session_token)
    code, status, _ = error_of(client.get_caller_identity)
    assert (code, status) == ("SignatureDoesNotMatch", 403)


@pytest.mark.parametrize("kind", ["unknown key", "wrong token", "missing token"])
def test_bad_key_or_token_is_invalid_client_token_id(threaded_aws: AwsStandIns, kind: str) -> None:
    """An unknown key, a wrong token and a missing token give InvalidClientTokenId (403)."""
    creds = threaded_aws.authority.mint()
    key, token = creds.access_key_id, creds.session_token
    if kind == "unknown key":
        key = "ASIAUNKNOWNKEY000000"
    elif kind == "wrong token":
        token = threaded_aws.authority.mint().session_token
    else:
        token = None
    client = sts_client(threaded_aws, key, creds.secret_access_key, token)
    code, status, message = error_of(client.get_caller_identity)
    assert (code, status) == ("InvalidClientTokenId", 403)
    assert message == "The security token included in the request is invalid."


def test_expired_credentials_are_expired_token(threaded_aws: AwsStandIns, clock: Any) -> None:
    """Credentials past their expiry give ExpiredToken (400)."""
    creds = threaded_aws.authority.mint(lifetime=30)
    clock.advance(31)
    code, status, _ = error_of(client_for(threaded_aws, creds).get_caller_identity)
    assert (code, status) == ("ExpiredToken", 400)


def test_clock_skew_is_signature_does_not_match(threaded_aws: AwsStandIns, clock: Any) -> None:
    """A request signed 20 minutes away from the server's clock gives SignatureDoesNotMatch."""
    creds = threaded_aws.authority.mint(lifetime=7200)
    clock.advance(20 * 60)
    code, _, message = error_of(client_for(threaded_aws, creds).get_caller_identity)
    assert code == "SignatureDoesNotMatch" and message.startswith("Signature expired")


def test_region_pinned_server_rejects_other_region(
    authority: CredentialAuthority, clock: Any
) -> None:
    """A regional STS refuses a signature scoped to another region."""
    from pool.standins.sts import StsStandIn
    from pool.standins.threaded import ThreadedStandIns

    with ThreadedStandIns(lambda: StsStandIn(authority, region="eu-west-1")) as runner:
        creds = authority.mint()
        session = boto3.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
        )
        good = session.client("sts", region_name="eu-west-1", endpoint_url=runner.value.url)
        assert good.get_caller_identity()["Arn"] == creds.arn
        bad = session.client(
            "sts", region_name="us-west-2", endpoint_url=runner.value.url, config=NO_RETRY
        )
        code, _, message = error_of(bad.get_caller_identity)
        assert code == "SignatureDoesNotMatch" and "valid region" in message


def test_assume_role_from_user_key_honours_duration(threaded_aws: AwsStandIns) -> None:
    """AssumeRole from a user key returns new credentials with the requested duration."""
    user = threaded_aws.authority.add_long_term_key()
    threaded_aws.authority.configure_role("arn:aws:iam::123456789012:role/reader")
    answer = client_for(threaded_aws, user).assume_role(
        RoleArn="arn:aws:iam::123456789012:role/reader", RoleSessionName="s1", DurationSeconds=7200
    )
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::123456789012:assumed-role/reader/s1"
    lifetime = creds["Expiration"].timestamp() - threaded_aws.authority.clock()
    assert lifetime == pytest.approx(7200, abs=2)


def test_role_chaining_works_and_is_capped_at_one_hour(threaded_aws: AwsStandIns) -> None:
    """Role chaining: assumed-role credentials can AssumeRole, but not for more than 3600 s."""
    first = threaded_aws.authority.mint()
    threaded_aws.authority.configure_role("arn:aws:iam::123456789012:role/next")
    client = client_for(threaded_aws, first)
    answer = client.assume_role(RoleArn="arn:aws:iam::123456789012:role/next", RoleSessionName="c1")
    chained = answer["Credentials"]
    next_client = sts_client(
        threaded_aws, chained["AccessKeyId"], chained["SecretAccessKey"], chained["SessionToken"]
    )
    assert next_client.get_caller_identity()["Arn"].endswith(":assumed-role/next/c1")
    code, status, message = error_of(
        client.assume_role,
        RoleArn="arn:aws:iam::123456789012:role/next",
        RoleSessionName="c1",
        DurationSeconds=7200,
    )
    assert (code, status) == ("ValidationError", 400) and "role chaining" in message


def test_unknown_roles_are_refused_as_sts_does(threaded_aws: AwsStandIns) -> None:
    """AssumeRole / AssumeRoleWithWebIdentity on a role never registered: AccessDenied (403)."""
    client = client_for(threaded_aws, threaded_aws.authority.mint())
    code, status, message = error_of(
        client.assume_role, RoleArn="arn:aws:iam::123456789012:role/nope", RoleSessionName="s1"
    )
    assert (code, status) == ("AccessDenied", 403) and "role/nope" in message
    token = threaded_aws.authority.issue_web_identity_token()
    code, status, _ = error_of(
        sts_client(threaded_aws).assume_role_with_web_identity,
        RoleArn="arn:aws:iam::123456789012:role/nope",
        RoleSessionName="s1",
        WebIdentityToken=token,
    )
    assert (code, status) == ("AccessDenied", 403)
    threaded_aws.authority.configure_role("arn:aws:iam::123456789012:role/nope")  # now it exists
    assert client.assume_role(RoleArn="arn:aws:iam::123456789012:role/nope", RoleSessionName="s1")


def test_unknown_roles_can_be_allowed_explicitly() -> None:
    """CredentialAuthority(allow_unknown_roles=True) restores assume-anything for ad-hoc tests."""
    from pool.standins.authority import CredentialAuthority

    assert CredentialAuthority().role_config("arn:aws:iam::123456789012:role/nope") is None
    loose = CredentialAuthority(allow_unknown_roles=True)
    assert loose.role_config("arn:aws:iam::123456789012:role/nope") is not None


def test_assume_role_requires_signature(threaded_aws: AwsStandIns) -> None:
    """AssumeRole with a bad signature is refused like GetCallerIdentity."""
    creds = threaded_aws.authority.mint()
    client = sts_client(threaded_aws, creds.access_key_id, "y" * 40, creds.session_token)
    code, _, _ = error_of(
        client.assume_role, RoleArn="arn:aws:iam::123456789012:role/x", RoleSessionName="s1"
    )
    assert code == "SignatureDoesNotMatch"


def test_external_id_required_by_role(threaded_aws: AwsStandIns) -> None:
    """A role configured with an ExternalId refuses AssumeRole without it (AccessDenied)."""
    role = "arn:aws:iam::123456789012:role/partner"
    threaded_aws.authority.configure_role(role, external_id="ext-123")
    client = client_for(threaded_aws, threaded_aws.authority.add_long_term_key())
    code, status, _ = error_of(client.assume_role, RoleArn=role, RoleSessionName="s1")
    assert (code, status) == ("AccessDenied", 403)
    answer = client.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="ext-123")
    assert answer["AssumedRoleUser"]["Arn"].endswith("assumed-role/partner/s1")


def test_assume_role_with_web_identity(threaded_aws: AwsStandIns) -> None:
    """AssumeRoleWithWebIdentity (unsigned) with an issued token returns credentials."""
    token = threaded_aws.authority.issue_web_identity_token(subject="system:serviceaccount:a:b")
    client = sts_client(threaded_aws)
    answer = client.assume_role_with_web_identity(
        RoleArn=threaded_aws.role_arn,
        RoleSessionName="irsa",
        WebIdentityToken=token,
        DurationSeconds=900,
    )
    assert answer["SubjectFromWebIdentityToken"] == "system:serviceaccount:a:b"
    assert answer["Audience"] == "sts.amazonaws.com"
    lifetime = answer["Credentials"]["Expiration"].timestamp() - threaded_aws.authority.clock()
    assert lifetime == pytest.approx(900, abs=2)


@pytest.mark.parametrize(
    ("token", "code"),
    [("garbage", "InvalidIdentityToken"), ("expired", "ExpiredTokenException")],
)
def test_web_identity_bad_token(
    threaded_aws: AwsStandIns, clock: Any, token: str, code: str
) -> None:
    """An unknown token is InvalidIdentityToken, an expired one ExpiredTokenException (400)."""
    if token == "expired":
        token = threaded_aws.authority.issue_web_identity_token(lifetime=10)
        clock.advance(11)
    got, status, _ = error_of(
        sts_client(threaded_aws).assume_role_with_web_identity,
        RoleArn=threaded_aws.role_arn,
        RoleSessionName="irsa",
        WebIdentityToken=token,
    )
    assert (got, status) == (code, 400)


def test_duration_below_minimum_is_validation_error(threaded_aws: AwsStandIns) -> None:
    """DurationSeconds under the authority's minimum is a ValidationError naming the bound."""
    authority = threaded_aws.authority
    token = authority.issue_web_identity_token()
    authority.min_duration = 1000  # botocore itself refuses values under 900
    got, status, message = error_of(
        sts_client(threaded_aws).assume_role_with_web_identity,
        RoleArn=threaded_aws.role_arn,
        RoleSessionName="irsa",
        WebIdentityToken=token,
        DurationSeconds=950,
    )
    assert (got, status) == ("ValidationError", 400) and "greater than or equal to 1000" in message


def test_throttle_fault_is_sts_throttling(threaded_aws: AwsStandIns) -> None:
    """A throttle fault answers STS's Throttling / 'Rate exceeded' (HTTP 400)."""
    threaded_aws.faults.add("sts:GetCallerIdentity:throttlex1")
    client = client_for(threaded_aws, threaded_aws.authority.mint())
    assert error_of(client.get_caller_identity) == ("Throttling", 400, "Rate exceeded")
    assert client.get_caller_identity()["Account"] == "123456789012"
    assert threaded_aws.sts.requests["GetCallerIdentity"] == 2


def test_error_fault_is_5xx_receiver_error(threaded_aws: AwsStandIns) -> None:
    """An error fault answers a 5xx that botocore parses as a service error."""
    threaded_aws.faults.add("sts:error=503x1")
    client = client_for(threaded_aws, threaded_aws.authority.mint())
    code, status, _ = error_of(client.get_caller_identity)
    assert (code, status) == ("ServiceUnavailable", 503)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"Action=Nope&Version=2011-06-15", "InvalidAction"),
        (b"", "InvalidAction"),
        (b"\xff\xfe\x00garbage", "MalformedQueryString"),
        (b"Action=GetCallerIdentity&Version=2011-06-15", "MissingAuthenticationToken"),
        (
            b"Action=AssumeRoleWithWebIdentity&RoleSessionName=s&WebIdentityToken=x",
            "ValidationError",
        ),
        (
            b"Action=AssumeRoleWithWebIdentity&RoleArn=bad&RoleSessionName=ss&WebIdentityToken=x",
            "ValidationError",
        ),
        (
            b"Action=AssumeRoleWithWebIdentity&RoleArn=arn:aws:iam::123456789012:role/r"
            b"&RoleSessionName=a/b&WebIdentityToken=x",
            "ValidationError",
        ),
    ],
)
def test_malformed_requests_get_sts_errors(
    threaded_aws: AwsStandIns, body: bytes, code: str
) -> None:
    """Garbage and incomplete requests get an STS ErrorResponse, never a crash."""
    resp = httpx.post(
        threaded_aws.sts_url + "/",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert 400 <= resp.status_code < 500
    assert resp.text.startswith('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    assert f"<Code>{code}</Code>" in resp.text and "<Type>Sender</Type>" in resp.text
