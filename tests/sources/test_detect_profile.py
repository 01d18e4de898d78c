"""from_environment() and the shared-config profile: where it sits in the chain, no fall-back
when AWS_PROFILE is explicit. Every environment points HOME and both files into a temp home."""

from __future__ import annotations

from pathlib import Path

from pool.sources import ContainerSource, EnvironmentSource, from_environment
from pool.sources.profile import ProfileSource
from pool.standins.aws import AwsStandIns
from pool.standins.laptop import DeveloperHome


async def test_explicit_profile_wins_over_compute_environments(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """AWS_PROFILE with IRSA and ECS variables also set: that profile, and only it."""
    env = home.env("sso") | aws.env_for("ecs") | aws.env_for("eks_irsa")
    source = from_environment(env)
    assert isinstance(source, ProfileSource) and source.explicit and source.fallback is None
    async with source:
        creds = await source.fetch()
    assert creds.source == "profile:sso" and aws.ecs.requests["credentials"] == 0


async def test_explicit_profile_wins_over_stale_keys(home: DeveloperHome, logs) -> None:
    """AWS_PROFILE with AWS_ACCESS_KEY_ID also set: the profile, and a warning naming the keys."""
    env = home.env("static") | {"AWS_ACCESS_KEY_ID": "AKIAX", "AWS_SECRET_ACCESS_KEY": "s"}
    async with from_environment(env) as source:
        creds = await source.fetch()
    assert creds.access_key_id == home.long_term_key.access_key_id
    warned = [e for e in logs if e["event"] == "credentials.source.profile_over_keys"]
    assert warned and warned[0]["ignored"] == "AWS_ACCESS_KEY_ID"


async def test_environment_keys_come_before_the_default_profile(home: DeveloperHome) -> None:
    """Without AWS_PROFILE, AWS_ACCESS_KEY_ID beats ~/.aws (the SDKs' and the spec's order)."""
    env = home.env() | {"AWS_ACCESS_KEY_ID": "AKIAX", "AWS_SECRET_ACCESS_KEY": "s"}
    assert isinstance(from_environment(env), EnvironmentSource)


async def test_default_profile_before_the_container(home: DeveloperHome, aws: AwsStandIns) -> None:
    """A [default] profile with keys is used before the container endpoint (SDK order)."""
    key = home.long_term_key
    home.credentials_file.write_text(
        f"[default]\naws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret_access_key}\n"
    )
    async with from_environment(home.env() | aws.env_for("ecs")) as source:
        creds = await source.fetch()
    assert creds.access_key_id == key.access_key_id
    assert aws.ecs.requests["credentials"] == 0


async def test_no_default_profile_falls_back_to_the_container(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """Shared files without a usable [default] (a region only): the container endpoint serves."""
    home.config_file.write_text("[default]\nregion = eu-west-1\n")
    source = from_environment(home.env() | aws.env_for("ecs"))
    assert isinstance(source, ProfileSource) and isinstance(source.fallback, ContainerSource)
    async with source:
        creds = await source.fetch()
    assert aws.authority.lookup(creds.access_key_id) is not None
    assert aws.ecs.requests["credentials"] == 1 and "fallback ecs" in source.describe()


async def test_no_shared_files_means_no_profile(tmp_path: Path, aws: AwsStandIns) -> None:
    """With neither file present detection is what it was: the container source directly."""
    env = {"HOME": str(tmp_path), **aws.env_for("ecs")}
    assert isinstance(from_environment(env), ContainerSource)
    assert isinstance(from_environment(env | {"AWS_PROFILE": "x"}, include_profile=False),
                      ContainerSource)  # fmt: skip


async def test_devnull_shared_files_keep_the_real_home_out(aws: AwsStandIns) -> None:
    """AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE = os.devnull: no profile, whatever HOME holds."""
    import os

    env = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    assert isinstance(from_environment(env | aws.env_for("ecs")), ContainerSource)
