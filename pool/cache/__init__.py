"""The credential cache: refreshes ahead of expiry in the background, one fetch at a time.

* :mod:`.cache` — :class:`CredentialCache`, the public face;
* :mod:`.windows` — the refresh windows and backoff policy, pure functions;
* :mod:`.refresh` — the refresh state machine (what to do next, and when);
* :mod:`.entry` — the credential set being served and its status;
* :mod:`.task` — the background task that runs what the state machine decides;
* :mod:`.fanout` — subscribers and listeners told of every new set.
"""

from pool.cache.cache import CredentialCache
from pool.cache.fanout import Subscription
from pool.cache.windows import Fleet

__all__ = ["CredentialCache", "Fleet", "Subscription"]
