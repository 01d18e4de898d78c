"""The rotating client pool: one warmed driver client per credential set.

* :mod:`.pool` — :class:`ClientPool`, the public face: leases, ``run()``, status;
* :mod:`.generations` — the bookkeeping of generations and leases, no I/O;
* :mod:`.rotation` — build, warm, swap, drain: the I/O that the book decides;
* :mod:`.retry` — which failures ``run()`` retries on a newer client;
* :mod:`.drivers` — PyMongo and Motor behind one interface;
* :mod:`.monitor` — connection counts from the drivers' CMAP events;
* :mod:`.options` — checking the URI and client options.
"""

from pool.client_pool.pool import ClientPool

__all__ = ["ClientPool"]
