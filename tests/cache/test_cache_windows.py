"""The refresh-window and backoff policy (pure functions in ``pool.cache.windows``)."""

from __future__ import annotations

import random

import pytest

from pool._internal.backoff import backoff_delay
from pool.cache import windows as w

MIN = 60.0


@pytest.mark.parametrize(
    ("lifetime", "advisory"),
    [
        (15 * MIN, 5 * MIN),  # STS minimum: AWS's 5-minute tier, unscaled
        (20 * MIN, 5 * MIN),
        (60 * MIN, 15 * MIN),  # STS default
        (89 * MIN, 15 * MIN),
        (90 * MIN, 60 * MIN),
        (6 * 60 * MIN, 60 * MIN),  # EC2 instance credentials
    ],
)
def test_advisory_window_follows_aws_tiers(lifetime: float, advisory: float) -> None:
    """Advisory window is 5/15/60 min for lifetimes <= 20 min / < 90 min / longer."""
    assert w.advisory_for(lifetime) == advisory
    assert w.mandatory_for(advisory) == 60.0


@pytest.mark.parametrize("lifetime", [3.0, 6.0, 10.0, 120.0])
def test_short_lifetimes_scale_windows_down(lifetime: float) -> None:
    """Very short lifetimes get a third of the lifetime as advisory window, a quarter of that as mandatory."""  # noqa: E501
    windows = w.windows_for(lifetime)
    assert windows.advisory == pytest.approx(lifetime / 3)
    assert windows.mandatory == pytest.approx(lifetime / 12)
    assert 0 < windows.mandatory < windows.advisory < lifetime


def test_explicit_windows_win_and_mandatory_is_cut_to_advisory() -> None:
    """Explicit windows are used as given; a mandatory window never exceeds the advisory one."""
    assert w.windows_for(3600, advisory=100, mandatory=10) == w.Windows(100, 10)
    assert w.windows_for(3600, advisory=100) == w.Windows(100, 25)
    third = pytest.approx(10 / 3)
    assert w.windows_for(10, mandatory=50) == w.Windows(third, third)


def test_refresh_point_stays_in_the_jittered_part_of_the_advisory_window() -> None:
    """The scheduled refresh lies between the advisory start and advisory start + jitter * span."""
    rng = random.Random(1)
    windows = w.Windows(advisory=900, mandatory=60)
    points = [w.refresh_point(10_000, windows, 0.5, rng) for _ in range(2000)]
    assert min(points) >= 10_000 - 900
    assert max(points) <= 10_000 - 900 + 0.5 * 840
    assert max(points) - min(points) > 0.4 * 840  # actually spread, not a constant
    assert w.refresh_point(10_000, windows, 0.0, rng) == 10_000 - 900


def test_backoff_delay_doubles_its_bound_up_to_the_cap() -> None:
    """Retry delays are uniform in [0, min(cap, initial * 2**(n-1))] (full jitter)."""
    rng = random.Random(2)
    for attempt, bound in [
        (0, 1.0),
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
        (6, 32.0),
        (7, 60.0),
        (500, 60.0),
    ]:
        samples = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(500)]
        assert 0 <= min(samples) and max(samples) <= bound
        assert max(samples) > 0.8 * bound
        assert min(samples) < 0.2 * bound  # full jitter reaches down to zero


def test_backoff_delay_floor_keeps_a_minimum_pause() -> None:
    """With floor=0.5 ("equal jitter") each delay is at least half its bound."""
    rng = random.Random(3)
    samples = [backoff_delay(3, 0.5, 30.0, rng, floor=0.5) for _ in range(500)]
    assert 1.0 <= min(samples) < 1.2 and 1.8 < max(samples) <= 2.0
    with pytest.raises(ValueError, match="floor"):
        backoff_delay(1, 1.0, 2.0, rng, floor=1.5)


def test_backoff_delay_without_rng_uses_the_random_module() -> None:
    """Callers without their own generator get the random module's (seedable) one."""
    saved = random.getstate()
    try:
        random.seed(11)
        first = [backoff_delay(4, 1.0, 60.0) for _ in range(3)]
        random.seed(11)
        assert [backoff_delay(4, 1.0, 60.0) for _ in range(3)] == first
    finally:
        random.setstate(saved)
    assert all(0 <= d <= 8.0 for d in first)


def test_backoff_cap_scales_with_short_lifetimes() -> None:
    """The largest retry delay is backoff_max, and at most a quarter of the lifetime."""
    assert w.backoff_cap(60, None) == 60
    assert w.backoff_cap(60, 3600) == 60
    assert w.backoff_cap(60, 8) == 2


def test_non_retryable_delay_waits_at_least_half_the_cap() -> None:
    """After a non-retryable error the source is not asked again before half the cap."""
    rng = random.Random(3)
    samples = [w.non_retryable_delay(60, rng) for _ in range(500)]
    assert min(samples) >= 30 and max(samples) <= 60


def test_same_credentials_delay_is_short_and_bounded_by_the_advisory_window() -> None:
    """After the same keys come back, retry within seconds-to-minutes, never past advisory / 12."""
    rng = random.Random(4)
    first = [w.same_credentials_delay(1, 30, 3600, rng) for _ in range(500)]
    later = [w.same_credentials_delay(20, 30, 3600, rng) for _ in range(500)]
    assert max(first) <= 30
    assert max(later) <= 300 and max(later) > 250
    short = [w.same_credentials_delay(5, 30, 2.0, rng) for _ in range(200)]
    assert max(short) <= 0.2  # a 6-second credential retries within fractions of a second
