"""The rotating client pool: one warmed driver client per credential set.

* :mod:`.pool` — :class:`ClientPool`, the public face: lifecycle, status;
* :mod:`.leasing` — ``client()``, ``run()`` and their retry rules (a mixin of :class:`ClientPool`);
* :mod:`.budget` — ``max_connections_per_member``: capped warm-up, lease admission;
* :mod:`.generations` — the bookkeeping of generations and leases, no I/O;
* :mod:`.rotation` — build, warm, swap, drain: the I/O that the book decides;
* :mod:`.retry` — which failures ``run()`` retries on a newer client;
* :mod:`.status` — the typed records ``status()`` returns;
* :mod:`.drivers` — PyMongo and Motor behind one interface;
* :mod:`.warmup` — ping, fill and paced fill (``warm_spread``) of a new client;
* :mod:`.filling` — opening connections ahead of traffic, and never on a replaced client;
* :mod:`.monitor` — connection counts from the drivers' CMAP events;
* :mod:`.options` — checking the URI and client options.
"""

from pool.client_pool.pool import ClientPool
from pool.client_pool.status import (
    ConnectionCounts,
    CredentialStatus,
    GenerationStatus,
    PoolStatus,
    WarmupFailure,
)

__all__ = [
    "ClientPool",
    "ConnectionCounts",
    "CredentialStatus",
    "GenerationStatus",
    "PoolStatus",
    "WarmupFailure",
]
