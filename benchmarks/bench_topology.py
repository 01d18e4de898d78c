"""The pool on Atlas's shapes: per-member figures, TLS against plaintext, in one run.

    python benchmarks/bench_topology.py [--handshakes 40] [--warm 4]

Measures, on the loopback stand-ins (a 3-member replica set, both drivers):

1. new-client handshake (connect + hello + saslStart + saslContinue + ping)
   p50/p99 in ms with explicit credentials, plaintext vs TLS, and the ratio;
2. authentications per member at the swap (the new client's warm-up) and
   on the request path after it (``saslStart`` at the server while a workload
   below ``warm_connections`` runs);
3. peak connections per member (server side) in steady state and during a
   rotation, against the bound ``maxPoolSize_old + warm + 2 x 2 monitoring``;
4. a stepdown during load through ``cp.run()``: failed operations, missing
   acknowledged writes;
5. ``max_connections_per_member``: a rotation under load with the old
   client held open at ``maxPoolSize``, without the cap and with it: peak
   connections per member, writes/s while held (the cap's cost), failures;
6. ``--txn-workers`` with_transaction loops (two inserts each) through
   ``--txn-rotations`` rotations: committed, failed, missing, half-applied.

Not a test: prints the figures, asserts nothing. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import AsyncMongoClient, WriteConcern

from pool import ClientPool
from pool.cache import CredentialCache
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.cluster import MongoCluster
from tests.client_pool.pool_helpers import MintingSource


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def handshakes(tls: bool, n: int) -> list[float]:
    auth = CredentialAuthority()
    creds = auth.mint(lifetime=3600)
    async with MongoCluster(auth, members=3, tls=tls) as rs:
        host = rs.hosts[0]
        opts: dict[str, Any] = {
            "username": creds.access_key_id,
            "password": creds.secret_access_key,
            "authMechanism": "MONGODB-AWS",
            "authMechanismProperties": {"AWS_SESSION_TOKEN": creds.session_token},
            "directConnection": True,
        }
        if tls:
            opts |= {"tls": True, "tlsCAFile": rs.tls_ca_file}
        out = []
        for _ in range(n):
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                f"mongodb://{host}/", **opts
            )
            start = time.perf_counter()
            await client.admin.command("ping")
            out.append((time.perf_counter() - start) * 1000)
            await client.close()
        return out


async def pool_figures(driver: str, warm: int) -> dict[str, Any]:
    auth = CredentialAuthority(default_lifetime=60.0)
    async with MongoCluster(auth, members=3) as rs, CredentialCache(MintingSource(auth)) as cache:
        async with ClientPool(
            rs.uri,
            credentials=cache,
            driver=driver,
            warm_connections=warm,
            heartbeatFrequencyMS=500,
            maxPoolSize=warm * 2,
        ) as cp:  # type: ignore[call-overload]

            async def burst(rounds: int) -> None:
                async def one() -> None:
                    for _ in range(rounds):
                        await cp.run(lambda c: c.db.t.insert_one({}))

                await asyncio.gather(*(one() for _ in range(warm - 1)))

            await burst(5)
            await asyncio.sleep(1.5)  # the driver's periodic fill settles
            for s in rs.stats_by_member:
                s.connections_peak = s.connections_open
            await burst(5)
            steady = [s.connections_peak for s in rs.stats_by_member]
            before = [s.commands["saslStart"] for s in rs.stats_by_member]
            gen = cp.status().generation or 0
            await cache.refresh()
            await cp.wait_for_generation(gen + 1)
            at_swap = [
                s.commands["saslStart"] - b for s, b in zip(rs.stats_by_member, before, strict=True)
            ]
            mid = [s.commands["saslStart"] for s in rs.stats_by_member]
            await burst(10)
            request_path = [
                s.commands["saslStart"] - m for s, m in zip(rs.stats_by_member, mid, strict=True)
            ]
            rotation_peak = [s.connections_peak for s in rs.stats_by_member]

            acked: list[int] = []
            failed: list[str] = []

            async def writer(w: int) -> None:
                for n in range(30):
                    key = w * 100 + n
                    try:
                        await cp.run(
                            lambda c, k=key: c.db.get_collection(
                                "acked", write_concern=WriteConcern("majority")
                            ).insert_one({"_id": k})
                        )
                        acked.append(key)
                    except Exception as exc:
                        failed.append(type(exc).__name__)
                    if w == 0 and n == 10:
                        rs.step_down()
                    await asyncio.sleep(0)

            await asyncio.gather(*(writer(w) for w in range(10)))
            stored = {d["_id"] for d in rs.storage_client.db.acked.find()}
            return {
                "auths_at_swap": at_swap,
                "request_path_auths": request_path,
                "peak_steady": steady,
                "peak_rotation": rotation_peak,
                "bound": warm * 2 + warm + 4,
                "stepdown_failed": len(failed),
                "stepdown_missing": len(set(acked) - stored),
                "stepdown_ops": len(acked) + len(failed),
            }


async def transactions(driver: str, workers: int, rotations: int) -> dict[str, Any]:
    """``workers`` with_transaction loops (two inserts each) while the pool rotates."""
    auth = CredentialAuthority(default_lifetime=120.0)
    done: list[int] = []
    failed: list[str] = []
    stop = asyncio.Event()
    async with MongoCluster(auth, members=3) as rs, CredentialCache(MintingSource(auth)) as cache:
        async with ClientPool(
            rs.uri, credentials=cache, driver=driver, heartbeatFrequencyMS=500
        ) as cp:  # type: ignore[call-overload]

            async def worker(w: int) -> None:
                n = 0
                while not stop.is_set():
                    key = w * 100_000 + n
                    n += 1
                    try:
                        async with cp.client() as client:
                            session = client.start_session()
                            if hasattr(session, "__await__"):
                                session = await session
                            try:

                                async def txn(s: Any, k: int = key, c: Any = client) -> None:
                                    await c.db.a.insert_one({"_id": k}, session=s)
                                    await c.db.b.insert_one({"_id": k}, session=s)

                                await session.with_transaction(txn)
                            finally:
                                await session.end_session()
                        done.append(key)
                    except Exception as exc:
                        failed.append(type(exc).__name__)
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
            for _ in range(rotations):
                gen = cp.status().generation or 0
                await cache.refresh()
                await cp.wait_for_generation(gen + 1)
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*tasks)
        a = {d["_id"] for d in rs.storage_client.db.a.find()}
        b = {d["_id"] for d in rs.storage_client.db.b.find()}
        return {
            "committed": len(done),
            "failed": len(failed),
            "missing": len(set(done) - (a & b)),
            "half_applied": len(a ^ b),
            "rotations": rotations,
            "commits_at_server": rs.sessions.commits,
            "aborts_at_server": rs.sessions.aborts,
        }


async def cap_figures(driver: str, cap: int | None, hold: float = 1.0) -> dict[str, Any]:
    """A rotation under 6 writers with the old client held open ``hold`` s at maxPoolSize=6.

    Per member (server side): the most authenticated connections at once
    (the application's) and all connections (monitors too); writes done while
    the old client was held (the cap's cost), failed, missing.
    """
    auth = CredentialAuthority(default_lifetime=60.0)
    async with MongoCluster(auth, members=3) as rs, CredentialCache(MintingSource(auth)) as cache:
        async with ClientPool(
            rs.uri,
            credentials=cache,
            driver=driver,
            warm_connections=4,
            maxPoolSize=6,
            max_connections_per_member=cap,
            warm_spread=0,
            heartbeatFrequencyMS=500,
        ) as cp:  # type: ignore[call-overload]
            acked: list[int] = []
            failed: list[str] = []
            stop = asyncio.Event()

            async def writer(w: int) -> None:
                n = 0
                while not stop.is_set():
                    key, n = w * 1_000_000 + n, n + 1
                    try:
                        await cp.run(lambda c, k=key: c.db.t.insert_one({"_id": k}))
                        acked.append(key)
                    except Exception as exc:
                        failed.append(type(exc).__name__)
                    await asyncio.sleep(0)

            tasks = [asyncio.create_task(writer(w)) for w in range(6)]
            primary = rs.stats_by_member[rs.primary or 0]
            while primary.authenticated_open < 6:
                await asyncio.sleep(0.01)
            for s in rs.stats_by_member:
                s.authenticated_peak, s.connections_peak = s.authenticated_open, s.connections_open
            steady = [s.authenticated_open for s in rs.stats_by_member]
            async with cp.client():
                gen = cp.status().generation or 0
                await cache.refresh()
                await cp.wait_for_generation(gen + 1)
                before = len(acked)
                await asyncio.sleep(hold)
                during = len(acked) - before
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)
            stored = {d["_id"] for d in rs.storage_client.db.t.find({}, {"_id": 1})}
            status = cp.status()
            return {
                "cap": cap,
                "app_steady": steady,
                "app_peak": [s.authenticated_peak for s in rs.stats_by_member],
                "all_peak": [s.connections_peak for s in rs.stats_by_member],
                "writes_while_held_per_s": round(during / hold),
                "capped_leases": status.capped_leases,
                "failed": len(failed),
                "missing": len(set(acked) - stored),
            }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--handshakes", type=int, default=40)
    p.add_argument("--warm", type=int, default=4)
    p.add_argument("--txn-workers", type=int, default=100)
    p.add_argument("--txn-rotations", type=int, default=10)
    args = p.parse_args()
    logging.disable(logging.CRITICAL)
    plain = await handshakes(False, args.handshakes)
    tls = await handshakes(True, args.handshakes)
    print(
        f"handshake (ms)  plaintext p50 {statistics.median(plain):.2f} p99 {_pct(plain, 0.99):.2f}"
        f" | TLS p50 {statistics.median(tls):.2f} p99 {_pct(tls, 0.99):.2f}"
        f" | TLS/plaintext p50 x{statistics.median(tls) / statistics.median(plain):.2f}"
    )
    for driver in ("pymongo", "motor"):
        figures = await pool_figures(driver, args.warm)
        print(driver, figures)
    print("max_connections_per_member: old client held open at maxPoolSize=6 through a rotation")
    for driver in ("pymongo", "motor"):
        for cap in (None, 8):
            print(driver, await cap_figures(driver, cap))
    for driver in ("pymongo", "motor"):
        txn = await transactions(driver, args.txn_workers, args.txn_rotations)
        print(driver, "with_transaction", txn)


if __name__ == "__main__":
    asyncio.run(main())
