"""Registry queries at scale: what an alias pointed to at time T, and a version's
lineage, with 10,000 versions and 10,000 alias events (``--quick``: 2,000).

The rows are inserted set-based; each figure is the median of repeated calls, printed
beside a reference measured in the same run (a primary-key lookup of one version).
Targets (issue: registry): alias-at-time-T and lineage under 10 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from mlops_lite import connect

BASE = datetime(2025, 3, 1, tzinfo=UTC)


def fill(platform: Any, n: int) -> None:
    """n versions of model 'bulk'; event i moves production (even i) or staging (odd i) to version i."""
    with platform._store.engine.begin() as db:
        db.execute(text("INSERT INTO models (name, description, created_at) VALUES ('bulk', '', :at)"), {"at": BASE})
        db.execute(text(
            "INSERT INTO model_versions (model, version, digest, size, signature, run_id, data_commits, params, "
            "metrics, created_at, created_by) SELECT 'bulk', '1.' || (i // 100) || '.' || (i % 100), 'sha-' || i, 1, "
            "'{}'::JSON, 'run-' || i, ('[\"commit-' || i || '\"]')::JSON, '{}'::JSON, '{}'::JSON, "
            ":at + i * INTERVAL 1 SECOND, 'bench' FROM range(:n) t(i)"), {"at": BASE, "n": n})
        db.execute(text(
            "INSERT INTO alias_events (id, model, alias, seq, kind, from_version, to_version, actor, reason, "
            "occurred_at) SELECT 'e' || i, 'bulk', CASE WHEN i % 2 = 0 THEN 'production' ELSE 'staging' END, "
            "i // 2 + 1, 'move', CASE WHEN i >= 2 THEN '1.' || ((i - 2) // 100) || '.' || ((i - 2) % 100) END, "
            "'1.' || (i // 100) || '.' || (i % 100), 'bench', 'event ' || i, :at + i * INTERVAL 1 SECOND "
            "FROM range(:n) t(i)"), {"at": BASE, "n": n})


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 versions instead of 10,000")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 10_000
    repeats = 10 if args.quick else 30
    print(f"bench/registry.py ({'quick' if args.quick else 'default'} size): {n:,} versions, {n:,} alias events")
    print(f"  machine: {os.cpu_count()} cores, Python {host.python_version()}; {host.platform()}")
    figures = []
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-registry-") as tmp, connect(home=Path(tmp)) as p:
        fill(p, n)
        when = BASE + timedelta(seconds=n // 2 + 0.5)
        reference = median_ms(lambda: p.registry.get_version("bulk", "1.0.7"), repeats)
        expected = f"1.{(n // 2) // 100}.{(n // 2) % 100}"
        assert p.registry.alias_at("bulk", "production", when).version == expected
        for name, label, call in (
                ("alias_at_ms", "alias at time T", lambda: p.registry.alias_at("bulk", "production", when)),
                ("lineage_alias_at_ms", "lineage of production at T",
                 lambda: p.registry.lineage("bulk", "production", at=when)),
                ("lineage_version_ms", "lineage of a version", lambda: p.registry.lineage("bulk", "1.7.21"))):
            value = median_ms(call, repeats)
            figures.append((name, label, value, reference, value / reference, 10.0, value <= 10.0))
    print(f"\n{'figure':<32}{'value':>12}{'reference':>14}{'ratio':>8}{'target':>10}  result  reference is")
    for _, label, value, ref, ratio, _, ok in figures:
        print(f"{label:<32}{value:>9.2f} ms{ref:>11.2f} ms{ratio:>8.2f}{'<= 10 ms':>10}  "
              f"{'ok' if ok else 'SHORT':<6}  get_version (primary key)")
    print()
    for name, _, value, ref, ratio, target, ok in figures:
        print(f"bench: {name} value={value:.3g} reference={ref:.3g} ratio={ratio:.3g} target={target:g} "
              f"{'ok' if ok else 'short'}")
    if args.json:
        args.json.write_text(json.dumps([{"figure": f[0], "value": f[2], "reference": f[3], "ratio": f[4],
                                          "target": f[5], "ok": f[6]} for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
