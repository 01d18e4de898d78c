"""Thin glue for web frameworks; each module imports its framework only when used.

* :mod:`pool.integrations.fastapi`: a lifespan that opens and closes a
  :class:`pool.ClientPool`, a dependency yielding a leased database, and
  ``mount_health(app)`` for the ``/healthz/live`` and ``/healthz/ready`` probes.
* :mod:`pool.integrations.aiohttp`: a ``cleanup_ctx`` entry, an accessor, and
  ``add_health_routes(app)`` for the same probes.

Workers need no glue: ``async with ClientPool(...) as cp:``.
"""
