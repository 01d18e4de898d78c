"""The AWS stand-in group (environment variables, token files, lifecycle) and the thread runner."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import ENVIRONMENTS, AwsStandIns
from pool.standins.sts import StsStandIn
from pool.standins.threaded import ThreadedStandIns, run_in_thread

EXPECTED_VARS = {
    "lambda": {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    },
    "ecs": {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"},
    "eks_pod_identity": {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    },
    "ec2": {"AWS_EC2_METADATA_SERVICE_ENDPOINT"},
    "eks_irsa": {
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
    },
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
async def test_env_for_gives_standard_variables(aws: AwsStandIns, environment: str) -> None:
    """Each environment's variables are the standard AWS_* names, plus region and STS endpoint.

    Every block names the stand-ins' STS, so STS calls made with its credentials stay local.
    """
    env = aws.env_for(environment)
    common = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_STS"}
    assert set(env) == EXPECTED_VARS[environment] | common
    assert env["AWS_ENDPOINT_URL_STS"] == aws.sts_url
    assert all(v and "\n" not in v for v in env.values())


async def test_lambda_env_mints_fresh_credentials(aws: AwsStandIns) -> None:
    """Every 'lambda' call mints a new credential set the authority knows."""
    first, second = aws.env_for("lambda"), aws.env_for("lambda")
    assert first["AWS_ACCESS_KEY_ID"] != second["AWS_ACCESS_KEY_ID"]
    assert aws.authority.lookup(first["AWS_ACCESS_KEY_ID"]) is not None
    assert first["AWS_CREDENTIAL_EXPIRATION"].endswith("Z")


async def test_unknown_environment_names_the_choices(aws: AwsStandIns) -> None:
    """An unknown environment raises ValueError listing the valid ones."""
    with pytest.raises(ValueError, match="eks_pod_identity"):
        aws.env_for("mainframe")


async def test_token_files_hold_tokens_and_are_removed(authority: CredentialAuthority) -> None:
    """Token files are private, newline-free, valid; aclose() removes their directory."""
    async with AwsStandIns(authority) as aws:
        web = aws.web_identity_token_file.read_text()
        assert authority.check_web_identity_token(web) == "system:serviceaccount:default:app"
        assert aws.pod_identity_token_file.read_text() == aws.pod_identity_token
        assert oct(aws.pod_identity_token_file.stat().st_mode & 0o777) == "0o600"
        directory = aws.token_dir
    assert not directory.exists()
    await aws.aclose()  # idempotent


async def test_summary_has_emulate_keys_and_repr_hides_tokens(aws: AwsStandIns) -> None:
    """summary() has the emulate JSON keys; repr shows URLs but no token."""
    summary = aws.summary()
    for key in (
        "sts_endpoint",
        "imds_endpoint",
        "ecs_full_uri",
        "ecs_auth_token",
        "web_identity_token_file",
        "role_arn",
        "region",
        "lambda_env",
    ):
        assert key in summary
    assert aws.ecs_auth_token not in repr(aws) and aws.pod_identity_token not in repr(aws)
    assert aws.sts_url in repr(aws)


async def test_short_lifetime_scales_margin() -> None:
    """With a 6 s lifetime the refresh margin is 2 s and STS accepts short durations."""
    async with AwsStandIns(lifetime=6) as aws:
        assert aws.refresh_margin == 2
        assert aws.authority.min_duration == 6
        creds = aws.imds.vendor.current()
        assert creds.expiration is not None
        assert creds.expiration.timestamp() - aws.authority.clock() <= 7


async def test_start_failure_cleans_up(authority: CredentialAuthority) -> None:
    """If an endpoint cannot bind, start() raises and leaves no server or directory behind."""
    aws = AwsStandIns(authority)
    with pytest.raises(OSError):
        await aws.start(host="192.0.2.1")  # TEST-NET address: not ours to bind
    assert not aws.token_dir.exists()
    assert not aws.sts.started


def test_threaded_runs_on_its_own_loop_and_stops(authority: CredentialAuthority) -> None:
    """ThreadedStandIns serves from a background thread and joins it on exit."""
    runner = run_in_thread(lambda: AwsStandIns(authority))
    with runner as entered:
        assert entered is runner
        group = runner.value
        assert group.sts.started
        thread_loop = runner.loop
        assert runner.call(lambda: _loop_id()) == id(thread_loop)
        names = {t.name for t in threading.enumerate()}
        assert "standins" in names
    assert not group.sts.started
    assert "standins" not in {t.name for t in threading.enumerate()}
    runner.stop()  # idempotent


async def _loop_id() -> int:
    return id(asyncio.get_running_loop())


async def test_threaded_async_use_keeps_caller_loop_free(authority: CredentialAuthority) -> None:
    """Used with 'async with', start/stop run off the caller's loop; acall works."""
    async with ThreadedStandIns(lambda: StsStandIn(authority)) as runner:
        other = await runner.acall(_loop_id)
        assert other != id(asyncio.get_running_loop())
        assert runner.value.url.startswith("http://127.0.0.1:")


def test_threaded_start_error_is_raised(authority: CredentialAuthority) -> None:
    """A group that fails to start re-raises its error from start(), chained."""

    class Broken(StsStandIn):
        async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
            raise OSError("port taken")

    runner = ThreadedStandIns(lambda: Broken(authority))
    with pytest.raises(RuntimeError, match="failed to start") as info:
        runner.start()
    assert isinstance(info.value.__cause__, OSError)


def test_threaded_value_before_start_is_an_error(authority: CredentialAuthority) -> None:
    """Reading .value before start() says to call start()."""
    with pytest.raises(RuntimeError, match="start"):
        _ = ThreadedStandIns(lambda: StsStandIn(authority)).value


def test_env_for_is_usable_from_the_test_thread(threaded_aws: AwsStandIns) -> None:
    """env_for and the authority are thread-safe to call while the group serves elsewhere."""
    env = threaded_aws.env_for("lambda")
    assert threaded_aws.authority.lookup(env["AWS_ACCESS_KEY_ID"]) is not None
    assert os.path.exists(threaded_aws.env_for("eks_irsa")["AWS_WEB_IDENTITY_TOKEN_FILE"])
