"""ConnectionMonitor counts per member: CMAP ids repeat across a replica set's pools."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pymongo.server_type import SERVER_TYPE

from pool.client_pool.monitor import ConnectionMonitor, warm_members

A, B, C = ("m0", 1), ("m1", 1), ("m2", 1)


def _event(address: tuple[str, int], conn_id: int) -> Any:
    return SimpleNamespace(address=address, connection_id=conn_id)


def test_same_connection_id_on_two_members_counts_twice() -> None:
    """Connection 1 on m0 and connection 1 on m1 are two ready connections (PyMongo 4.20 ids)."""
    mon = ConnectionMonitor()
    for address in (A, B):
        mon.connection_ready(_event(address, 1))
    mon.connection_ready(_event(A, 2))
    assert mon.ready == 3
    assert mon.ready_on(A) == 2 and mon.ready_on(B) == 1
    assert mon.short_of(2, [A, B]) and not mon.short_of(1, [A, B])
    mon.connection_closed(_event(A, 1))
    mon.connection_closed(_event(A, 1))  # a second close of the same one changes nothing
    assert mon.ready == 2 and mon.ready_by_member() == {"m0:1": 1, "m1:1": 1}


def test_short_of_with_no_known_member_uses_the_total() -> None:
    """Before the topology lists any member, the client-wide count decides."""
    mon = ConnectionMonitor()
    mon.connection_ready(_event(A, 1))
    assert not mon.short_of(1, []) and mon.short_of(2, [])


def test_warm_members_waits_for_unchecked_not_for_failed() -> None:
    """Data-bearing and not-yet-checked members are filled; arbiters and failed checks are not."""
    sds = {
        A: SimpleNamespace(server_type=SERVER_TYPE.RSPrimary, error=None),
        B: SimpleNamespace(server_type=SERVER_TYPE.Unknown, error=None),
        C: SimpleNamespace(server_type=SERVER_TYPE.Unknown, error=OSError("down")),
        ("arb", 1): SimpleNamespace(server_type=SERVER_TYPE.RSArbiter, error=None),
    }
    client = SimpleNamespace(topology_description=SimpleNamespace(server_descriptions=lambda: sds))
    assert warm_members(client) == [A, B]
