"""bench/features.py runs: its mlops-lite half at a tiny size, without Feast, so the script
cannot rot. Timings are printed, never asserted; what is asserted is what the bench
checks (the sample's answers against its numpy point-in-time join, both homes) and what
its figures stand on (an incremental materialization that wrote exactly the changed keys,
online values present, the HTTP route answered)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_features_runs_without_a_peer(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    # The bench makes embedded homes of its own (it measures DuckDB): not the database a
    # --postgres run gives each test, which its two homes would then share.
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_LITE_DATABASE_URL"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "features.py"), "--quick", "--no-peer",
                           "--entities", "500", "--entity-rows", "1000", "--calls", "100", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = {f["figure"] for f in report["figures"]}
    assert {"features_historical_s", "features_historical_peak_rss_mb", "features_historical_plain_s",
            "features_online_inproc_1_p99_ms", "features_online_inproc_100_p99_ms",
            "features_online_inproc_logged_1_p99_ms", "features_online_http_1_p99_ms",
            "features_online_http_100_p99_ms", "features_online_inproc_1_p99_abs_ms",
            "features_materialize_incremental_s"} <= names
    assert report["homes"]["default"]["encrypted"] is True
    assert report["homes"]["plain"]["encrypted"] is False
    for home in ("default", "plain"):
        assert report["answers"][home] == {"compared": 1000, "differ": 0, "differ_ties": 0, "left_out": 0}
        assert report["results"][f"historical_{home}"]["rows"] == 1000
    online = report["results"]["online"]
    assert online["full_keys"] == 500
    assert online["incremental_modes"] == ["incremental"] * 3
    assert online["incremental_written"] == [5, 5, 5]
    assert online["online_status"] == "present"
    assert "http_absent" not in online
    for figure in report["figures"]:  # no peer: every Feast-relative figure says n/a, none claims ok
        if "Feast" in figure["reference_label"]:
            assert figure["note"] == "n/a" and figure["ok"] is False
    lines = [line for line in done.stdout.splitlines() if line.startswith("bench: ")]
    assert len(lines) == len(report["figures"])
    assert all(line.rsplit(" ", 1)[1] in ("ok", "short", "n/a") for line in lines)
