"""Clock skew, measured from the credential endpoints' ``Date`` headers, named in refusals.

A clock more than 15 minutes off makes STS refuse every SigV4 signature, and a
MONGODB-AWS handshake then fails with a bare code 18; the sources measure the
skew on every answer so the refusal can say so.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pool import CredentialFetchError
from pool._internal import skew
from pool.client_pool.diagnose import refused_error
from pool.sources import ContainerSource, WebIdentitySource
from pool.standins.aws import AwsStandIns


def _creds() -> str:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return json.dumps(
        {
            "AccessKeyId": "ASIASKEWSKEWSKEW0001",
            "SecretAccessKey": "skew-secret-recognisable",
            "Token": "skew-token-recognisable",
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def test_skew_is_local_minus_remote_and_only_large_skew_is_described() -> None:
    """A Date header 20 minutes ahead means this clock is 1,200 s behind: over the limit."""
    now = 1_800_000_000.0
    ahead = format_datetime(datetime.fromtimestamp(now + 1200, UTC), usegmt=True)
    assert skew.observe(ahead, "sts.example:443", now=now) == pytest.approx(-1200)
    text = skew.describe()
    assert text is not None
    assert "1,200 s behind sts.example:443's" in text and "over SigV4's 15-minute limit" in text
    close = format_datetime(datetime.fromtimestamp(now - 30, UTC), usegmt=True)
    assert skew.observe(close, "sts.example:443", now=now) == pytest.approx(30)
    assert skew.describe() is None  # 30 s is nothing to report
    assert skew.observe("not a date", "x", now=now) is None
    assert skew.observe(None, "x") is None


async def test_a_source_measures_the_skew_and_warns_once(mini, logs) -> None:
    """An endpoint whose Date is 20 minutes ahead: the fetch works, one clock_skew warning."""
    future = format_datetime(datetime.now(UTC) + timedelta(minutes=20), usegmt=True)
    mini.answer(200, _creds(), **{"Content-Type": "application/json", "Date": future})
    async with ContainerSource(full_uri=mini.url + "/creds", timeout=1.0) as source:
        await source.fetch()
        await source.fetch()
    measured = skew.current()
    assert measured is not None and measured[0] == pytest.approx(-1200, abs=5)
    warnings = [e for e in logs if e["event"] == "clock_skew"]
    assert len(warnings) == 1 and warnings[0]["skew_s"] == pytest.approx(-1200, abs=5)
    assert warnings[0]["endpoint"].startswith("127.0.0.1:")


def test_a_refused_handshake_names_a_measured_skew() -> None:
    """Code 18 after a 20-minute skew was measured: the message says so; otherwise not."""
    plain = str(refused_error("pymongo", key="ASIA…0001", source="container", startup=True))
    assert "Measured:" not in plain
    ahead = format_datetime(datetime.now(UTC) + timedelta(minutes=20), usegmt=True)
    skew.observe(ahead, "169.254.170.2:80")
    named = str(refused_error("pymongo", key="ASIA…0001", source="container", startup=True))
    assert "Measured: this machine's clock is" in named and "behind 169.254.170.2:80's" in named


async def test_stand_ins_with_a_skewed_clock_show_it_and_expired_credentials_name_it(
    stale_aws: AwsStandIns,
) -> None:
    """Stand-ins two hours behind send a Date two hours behind, as a real endpoint's own
    clock would: the expired-on-arrival error then names the measured skew."""
    async with WebIdentitySource.from_env(stale_aws.env_for("eks_irsa")) as source:
        with pytest.raises(CredentialFetchError, match="already expired") as info:
            await source.fetch()
    measured = skew.current()
    assert measured is not None and measured[0] == pytest.approx(7200, abs=5)
    assert "Measured: this machine's clock is 7,2" in str(info.value)
    assert "s ahead of 127.0.0.1:" in str(info.value)


@pytest.mark.parametrize(
    "header",
    ["Tue Dec  1 14:00:00 2026", "Tue, 01 Dec 2026 14:00:00 -0000"],
    ids=["asctime", "minus-zero"],
)
def test_a_zoneless_date_is_utc_whatever_the_local_zone(
    header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9110's asctime form (no zone; recipients MUST accept it) is GMT, not local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        now = 1796133600.0  # Tue, 01 Dec 2026 14:00:00 GMT
        measured = skew.observe(header, "imds:80", now=now)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert measured == pytest.approx(0), f"skew {measured} s for a Date equal to now"
