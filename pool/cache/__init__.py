"""The credential cache: refreshes ahead of expiry in the background, one fetch at a time.

* :mod:`.cache` — :class:`CredentialCache`, the public face;
* :mod:`.refresh` — the refresh state machine: every state change, and what to do next;
* :mod:`.outcome` — what a fetch's outcome means (errors, retry delays, log lines);
* :mod:`.windows` — the refresh windows and backoff policy, pure functions;
* :mod:`.policy` — the cache's settings, validated;
* :mod:`.entry` — the credential set being served, and the fetch in flight;
* :mod:`.status` — :class:`CacheStatus`, what ``status()`` returns;
* :mod:`.task` — the background task that runs what the state machine decides;
* :mod:`.fanout` — subscribers and listeners told of every new set;
* :mod:`.compat` — the deprecated ``clock=<callable>, sleep=`` keywords.
"""

from pool.cache.cache import CredentialCache
from pool.cache.fanout import Subscription
from pool.cache.status import CacheStatus, ErrorStatus
from pool.cache.windows import Fleet

__all__ = ["CacheStatus", "CredentialCache", "ErrorStatus", "Fleet", "Subscription"]
