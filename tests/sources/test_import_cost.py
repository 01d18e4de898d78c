"""Importing pool.sources and using EnvironmentSource loads no AWS SDK (Lambda cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("boto3", "botocore", "aiobotocore", "aioboto3", "aiohttp")

SCRIPT = """
import asyncio, json, sys
import pool, pool.sources
from pool.sources import EnvironmentSource, from_environment
env = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
source = from_environment(env)
assert isinstance(source, EnvironmentSource)
creds = asyncio.run(source.fetch())
print(json.dumps(sorted(sys.modules)))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, *args, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )


def test_environment_path_imports_no_aws_sdk_and_no_aiohttp() -> None:
    """import pool.sources + an EnvironmentSource fetch leaves boto3/botocore/aiohttp unloaded."""
    modules = json.loads(_run().stdout.strip().splitlines()[-1])
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


def test_importtime_report_lists_no_aws_sdk_module() -> None:
    """python -X importtime shows no botocore/boto3/aiobotocore/aioboto3 module import."""
    report = _run("-X", "importtime").stderr
    lines = [line for line in report.splitlines() if line.startswith("import time:")]
    assert any(line.rstrip().endswith("pool.sources") for line in lines)
    names = [line.rsplit("|", 1)[-1].strip() for line in lines]
    assert not [n for n in names if n.split(".")[0] in HEAVY]


def test_sources_all_matches_exports() -> None:
    """pool.sources.__all__ lists exactly its public, non-module attributes."""
    import types

    import pool.sources

    public = {
        n
        for n, v in vars(pool.sources).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert public == set(pool.sources.__all__)
