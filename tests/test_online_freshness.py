"""OnlineStore judges each served view's data age by the view's freshness SLA, which the
snapshot carries, with the same rule as `featurekit freshness`."""

from datetime import datetime, timedelta

import pytest

from featurekit import OnlineStore


@pytest.mark.slow
def test_stale_flag_flips_just_past_warn_and_error_after(built_project):
    store = OnlineStore(built_project / "online")
    view = store.manifest["views"]["last_purchase_v1"]
    assert (view["freshness"]["warn_after"], view["freshness"]["error_after"]) == ("1 day", "3 days")
    newest = datetime.fromisoformat(view["max_feature_ts"]).replace(tzinfo=None)

    def judged(age: timedelta) -> dict:
        return store.freshness(now=(newest + age).isoformat())["last_purchase_v1"]

    assert judged(timedelta(days=1)) | {"age_seconds": None} == {
        "max_feature_ts": view["max_feature_ts"], "age_seconds": None, "status": "ok", "stale": False,
    }
    assert (judged(timedelta(days=1, microseconds=1))["status"], judged(timedelta(days=1, microseconds=1))["stale"]) == ("warn", True)
    assert judged(timedelta(days=3))["status"] == "warn"
    assert judged(timedelta(days=3, microseconds=1))["status"] == "error"
    assert judged(timedelta(days=2))["age_seconds"] == 2 * 86400
