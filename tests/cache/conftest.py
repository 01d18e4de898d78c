"""Fixtures for the cache tests; the fakes themselves live in ``cache_fakes``."""

from __future__ import annotations

from tests.cache.cache_fakes import cache, clock, make_cache, source

__all__ = ["cache", "clock", "make_cache", "source"]
