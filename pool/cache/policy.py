"""The cache's configuration, validated once: :class:`Policy`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pool.cache.windows import Fleet
from pool.errors import ConfigurationError

__all__ = ["Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """The cache's configuration (see :class:`pool.CredentialCache`), validated."""

    advisory: float | None
    mandatory: float | None
    jitter: float
    backoff_initial: float
    backoff_max: float
    same_retry: float
    fleet: Fleet | None = None  # a process of a fleet sharing a rate limit (windows.Fleet)

    def __post_init__(self) -> None:
        for label, value in (
            ("advisory_window", self.advisory),
            ("mandatory_window", self.mandatory),
        ):
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{label} must be a finite number of seconds >= 0 or None")
        if (
            self.advisory is not None
            and self.mandatory is not None
            and self.mandatory > self.advisory
        ):
            raise ConfigurationError(
                f"mandatory_window ({self.mandatory} s) must not exceed "
                f"advisory_window ({self.advisory} s)"
            )
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be between 0 and 1; got {self.jitter}")
        if not 0 < self.backoff_initial < math.inf:
            raise ConfigurationError(
                f"backoff_initial must be a positive number of seconds; got {self.backoff_initial}"
            )
        if not self.backoff_initial <= self.backoff_max < math.inf:
            raise ConfigurationError(
                f"backoff_max must be finite and >= backoff_initial ({self.backoff_initial} s); "
                f"got {self.backoff_max}"
            )
        if not (self.same_retry > 0 and math.isfinite(self.same_retry)):
            raise ConfigurationError("same_credentials_retry must be a positive number of seconds")
