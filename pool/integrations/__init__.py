"""Thin glue for web frameworks; each module imports its framework only when used.

* :mod:`pool.integrations.fastapi`: a lifespan that opens and closes a
  :class:`pool.ClientPool`, and a dependency yielding a leased database.
* :mod:`pool.integrations.aiohttp`: a ``cleanup_ctx`` entry and an accessor.

Workers need no glue: ``async with ClientPool(...) as cp:``.
"""
