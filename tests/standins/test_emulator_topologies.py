"""The Emulator's topology options and `python -m pool emulate` with the topology flags."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from pymongo import AsyncMongoClient, MongoClient

from pool.errors import ConfigurationError
from pool.standins.emulator import SRV_ZONE, Emulator
from pool.standins.process import EmulatorProcess
from tests.standins.cluster_fixtures import emulator_client_options
from tests.standins.net_guard import *  # noqa: F403


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        ({}, ""),
        ({"tls": True}, "?tls=true&tlsCAFile="),
        ({"replica_set": 3}, "?replicaSet=rs0"),
        ({"replica_set": 3, "tls": True}, "?replicaSet=rs0&tls=true&tlsCAFile="),
        ({"sharded": 2}, ""),
        ({"sharded": 2, "tls": True}, "?tls=true&tlsCAFile="),
    ],
)
async def test_emulator_uri_connects_for_each_topology(
    options: dict[str, Any], expect: str, loopback_only: list[str]
) -> None:
    """mongodb_uri is the URI a user writes for the topology, and it authenticates."""
    async with Emulator(**options) as em:
        summary = em.summary()
        assert expect in summary["mongodb_uri"]
        count = options.get("replica_set") or options.get("sharded") or 1
        assert len(summary["mongodb_members"]) == count
        assert (summary["tls_ca_file"] is not None) == bool(options.get("tls"))
        assert "mongodb_srv_uri" not in summary
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            em.mongodb_uri, **emulator_client_options(em)
        )
        try:
            assert (await client.admin.command("ping"))["ok"] == 1.0
        finally:
            await client.close()


@pytest.mark.parametrize(
    "options",
    [{"replica_set": 3, "tls": True}, {"replica_set": 3}, {"sharded": 2, "tls": True}],
    ids=["replica-set-tls", "replica-set-plaintext", "sharded-tls"],
)
async def test_emulator_srv_uri_resolves_in_process(
    options: dict[str, Any], loopback_only: list[str]
) -> None:
    """With srv=True the summary names the srv URI and the DNS server; srv_resolution() uses it."""
    async with Emulator(srv=True, **options) as em:
        summary = em.summary()
        assert summary["mongodb_srv_uri"].startswith(
            f"mongodb+srv://{SRV_ZONE}/?authSource=%24external"
        )
        assert summary["dns_server"].startswith("127.0.0.1:")
        assert all(
            m.endswith(f".{SRV_ZONE}:{m.rsplit(':', 1)[1]}") for m in summary["mongodb_members"]
        )
        with em.srv_resolution():
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                em.mongodb_srv_uri, **emulator_client_options(em)
            )
            try:
                await client.db.t.insert_one({"_id": 1})
                assert await client.db.t.count_documents({}) == 1
            finally:
                await client.close()


def test_emulator_refuses_impossible_topologies() -> None:
    """srv without a set, or a set and routers at once, are configuration errors."""
    with pytest.raises(ConfigurationError, match="srv"):
        Emulator(srv=True)
    with pytest.raises(ConfigurationError, match="not both"):
        Emulator(replica_set=3, sharded=2)


async def test_cli_replica_set_tls_srv_json(tmp_path: Path, loopback_only: list[str]) -> None:
    """emulate --replica-set 3 --tls --srv --json: every key; a sync client uses the srv URI."""
    async with EmulatorProcess(replica_set=3, tls=True, srv=True) as proc:
        info = proc.info
        assert {
            "mongodb_uri",
            "tls_ca_file",
            "mongodb_members",
            "mongodb_srv_uri",
            "dns_server",
        } <= set(info)
        assert "replicaSet=rs0&tls=true" in info["mongodb_uri"]
        host, port = info["dns_server"].rsplit(":", 1)
        env = info["environments"]["lambda"]

        def work() -> Any:
            from pool.standins.mongo.srv import loopback_resolution

            with loopback_resolution((host, int(port)), SRV_ZONE):
                client: MongoClient[dict[str, Any]] = MongoClient(
                    info["mongodb_srv_uri"],
                    username=env["AWS_ACCESS_KEY_ID"],
                    password=env["AWS_SECRET_ACCESS_KEY"],
                    authMechanism="MONGODB-AWS",
                    authMechanismProperties={"AWS_SESSION_TOKEN": env["AWS_SESSION_TOKEN"]},
                    serverSelectionTimeoutMS=10_000,
                )
                try:
                    return client.admin.command("replSetGetStatus")["members"]
                finally:
                    client.close()

        members = await anyio.to_thread.run_sync(work)
    assert [m["stateStr"] for m in members] == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert json.dumps(info)  # plain JSON


async def test_printed_srv_example_runs(loopback_only: list[str]) -> None:
    """The one-liner `emulate --srv` prints pings the set through mongodb+srv, in a new process."""
    import os
    import shlex
    import sys

    from pool.cli.emulate import render

    async with Emulator(replica_set=3, tls=True, srv=True) as em:
        summary = em.summary()
        text = render(summary, summary["environments"])
        line = text.splitlines()[-1].strip()
        assert "loopback_resolution" in line and line.startswith("python -c ")
        code = shlex.split(line[len("python -c ") :])[0]
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, **summary["environments"]["lambda"], "PYTHONPATH": root}
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()[-1000:]
    assert out.decode().strip() == "{'ok': 1.0}"
