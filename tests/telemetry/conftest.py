"""The client pool tests' fixtures (both drivers, the MongoDB stand-in, the authority)."""

from tests.client_pool.conftest import authority, driver, mongo

__all__ = ["authority", "driver", "mongo"]
