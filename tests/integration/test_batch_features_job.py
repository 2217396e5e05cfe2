"""simulate -> raw zone -> compact_lake -> build_batch_features on the Flink cluster, checked
against an independent pandas reference, for point-in-time correctness and idempotency."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_features_reference import reference_features

from connectors.batch_store import BatchOnlineStore, offline_root, read_offline
from connectors.lake import LAKE_TABLES, local_path, write_raw
from core.topics import BEHAVIOR_EVENT
from models.features.batch import TABLE_FEATURES, TABLE_KEYS
from onair.submit import last_json, submit

AS_OF = date(2026, 9, 9)
ONAIR = str(Path(sys.executable).with_name("onair"))


def _run_job(job: str, args: list[str], capsys) -> dict:
    capsys.readouterr()
    submit(job, args, detached=False)
    return last_json(capsys.readouterr().out)


def _transformed_bytes(lake: str) -> dict[str, bytes]:
    root = local_path(lake) / "transformed"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, table: str) -> None:
    cols = [*TABLE_KEYS[table], *TABLE_FEATURES[table]]
    got = got[cols].sort_values(list(TABLE_KEYS[table])).reset_index(drop=True)
    want = want[cols].sort_values(list(TABLE_KEYS[table])).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12, atol=1e-12)


@pytest.mark.integration
def test_simulated_world_to_batch_features(services, tmp_path, capsys):
    lake = (tmp_path / "lake").as_uri()
    sim = subprocess.run([ONAIR, "simulate", "--users", "400", "--days", "12", "--quiet",
                          "--start", "2026-09-01", "--lake", lake],
                         capture_output=True, text=True, check=True)
    simulated = last_json(sim.stdout)
    assert simulated["behavior_events"] > 1000

    compaction = _run_job("compact_lake", ["--lake", lake], capsys)
    assert compaction["rows_out"] + compaction["duplicates"] == compaction["rows_in"]
    assert compaction["duplicates"] > 0 and compaction["rejected"] == 0
    before = _transformed_bytes(lake)
    # Rerunning a day rewrites the same bytes.
    _run_job("compact_lake", ["--lake", lake, "--from", "2026-09-05", "--to", "2026-09-05"],
             capsys)
    assert _transformed_bytes(lake) == before

    first = _run_job("build_batch_features", ["--lake", lake, "--as-of", AS_OF.isoformat()],
                     capsys)
    assert first["days_read"] == 8
    reference = reference_features(lake, AS_OF, 60)
    for table in TABLE_KEYS:
        offline = read_offline(offline_root(lake), table, AS_OF.isoformat())
        assert len(offline) > 0
        assert (offline["run_id"] == first["run_id"]).all()
        _assert_same(offline, reference[table], table)

    # The online store serves the same numbers; unknown ids read as zeros.
    store = BatchOnlineStore()
    assert store.current(max_age_s=0)["run_id"] == first["run_id"]
    shows = reference["show"]
    creators = reference["creator"]
    user = reference["user"]["user_id"].iloc[0]
    got = store.read(user, [*shows["show_id"], "no-such-show"],
                     [*creators["creator_id"], "no-such-creator"])
    np.testing.assert_allclose(got.shows[:-1], shows[list(TABLE_FEATURES["show"])], rtol=1e-6)
    np.testing.assert_allclose(got.creators[:-1], creators[list(TABLE_FEATURES["creator"])],
                               rtol=1e-6)
    assert not got.shows[-1].any() and not got.creators[-1].any()
    u = reference["user"].set_index("user_id").loc[user]
    assert got.user_feature("u_active_days") == u["u_active_days"]
    ut = reference["user_topic"].query("user_id == @user").iloc[0]
    assert got.user_feature("ut_listen_share", ut["topic"]) == pytest.approx(
        ut["ut_listen_share"])

    # Events dated the as-of day never reach features as of that day...
    listener = reference["user"]["user_id"].iloc[1]
    burst = pd.DataFrame({
        "event_id": [f"late-{i}" for i in range(5)], "event_type": "listen_start",
        "ts": [int(pd.Timestamp(AS_OF, tz="UTC").timestamp() * 1000) + 60_000 * i
               for i in range(5)],
        "user_id": listener, "show_id": shows["show_id"].iloc[0], "creator_id": "c0",
        "topic": "tech", "duration_ms": pd.array([None] * 5, dtype="Int64"), "props": None,
    })[list(BEHAVIOR_EVENT.field_names())]
    write_raw(lake, LAKE_TABLES["behavior_events"], burst, "late")
    day = AS_OF.isoformat()
    _run_job("compact_lake", ["--lake", lake, "--from", day, "--to", day], capsys)
    second = _run_job("build_batch_features", ["--lake", lake, "--as-of", day], capsys)
    for table in TABLE_KEYS:
        _assert_same(read_offline(offline_root(lake), table, day), reference[table], table)
    assert store.current(max_age_s=0) == {"run_id": second["run_id"], "as_of": day,
                                          "previous": first["run_id"]}

    # ...but they do reach features as of the next day; the oldest run leaves Redis.
    next_day = date(2026, 9, 10).isoformat()
    third = _run_job("build_batch_features", ["--lake", lake, "--as-of", next_day], capsys)
    next_reference = reference_features(lake, date(2026, 9, 10), 60)
    for table in TABLE_KEYS:
        _assert_same(read_offline(offline_root(lake), table, next_day), next_reference[table],
                     table)
    listens = next_reference["user"].set_index("user_id").loc[listener, "u_listens_7d"]
    assert listens >= 5
    assert store.current(max_age_s=0)["previous"] == second["run_id"]
    assert not list(store.client.scan_iter(match=f"{store.prefix}:{first['run_id']}:*"))
    assert third["run_id"] != second["run_id"]
