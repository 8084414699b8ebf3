"""Benchmark of predict with the prediction log encrypted at rest, beside the same run on a
plaintext home.

    .venv/bin/python bench/prediction_log.py [--quick] [--json PATH] [--dir TMP]

Two homes are made in one temporary folder: one encrypted (the default: every prediction
file is Parquet encrypted by DuckDB under the log key) and one ``--no-encryption``; each
trains the same small model on the same rows and deploys it. Rounds alternate between
the homes; a round times N in-process ``platform.deployments.predict`` calls and the
``monitoring.flush()`` that writes their rows (the log must keep up, not only queue).
The best round of each side counts. Figures
(``bench: FIGURE value=V reference=R ratio=X target=T ok|short``; ratio = value/reference):

- ``predict_batch1_req_per_s_encrypted_log``: one-instance predicts per second with the
  encrypted log; reference: the same on the plaintext home. target >= 0.9.
- ``predict_batch100_rows_per_s_encrypted_log``: rows per second of 100-instance
  predicts, encrypted against plaintext. target >= 0.9.

Rows dropped or failed by either log are printed; a run with any is short. Everything
lives in a temporary folder removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figure, print_lines, print_table

TARGET = 0.9


def training_csv(rows: int = 400) -> bytes:
    rng = random.Random(7)
    lines = ["x1,x2,region,target"]
    for i in range(rows):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        lines.append(f"{x1:.4f},{x2:.4f},{('north', 'south', 'east')[i % 3]},{int(x1 + 0.5 * x2 > 0)}")
    return ("\n".join(lines) + "\n").encode()


def open_home(home: Path, *, encrypted: bool) -> Any:
    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    init_home(load_settings(home=home), encryption=None if encrypted else False)
    platform = open_local(load_settings(home=home))
    repo = platform.data.repo("bench")
    repo.create(classification="internal")
    source = home.parent / f"{home.name}-rows.csv"
    source.write_bytes(training_csv())
    platform.data.ingest("bench", source, "rows.csv")
    table = repo.ref("main").read_table("rows.csv").table
    spec = TrainingSpec.infer(table, target="target", algorithm="logistic_regression")
    trained = platform.training.train("bench", "main", "rows.csv", spec)
    version = platform.registry.register_from_run("bench-model", trained.run.id)
    platform.deployments.deploy("scoring", "bench-model", version.version)
    assert platform.monitoring.log_key is not None if encrypted else platform.monitoring.log_key is None
    return platform


def instances(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"x1": rng.gauss(0, 1), "x2": rng.gauss(0, 1), "region": ("north", "south", "east")[i % 3]}
            for i in range(n)]


def timed_round(platform: Any, calls: int, batch: int, seed: int) -> float:
    """Rows per second of ``calls`` predicts of ``batch`` instances, the log flushed."""
    bodies = [instances(batch, seed + i) for i in range(min(calls, 50))]
    predict = platform.deployments.predict
    t0 = time.perf_counter()
    for i in range(calls):
        predict("scoring", bodies[i % len(bodies)])
    platform.monitoring.flush()
    return calls * batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds, for a smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary homes go (default: $TMPDIR)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    calls1, calls100 = (1_500, 150) if args.quick else (10_000, 1_000)

    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-log-", dir=args.dir) as tmp:
        sides = {"encrypted": open_home(Path(tmp) / "encrypted", encrypted=True),
                 "plaintext": open_home(Path(tmp) / "plaintext", encrypted=False)}
        try:
            for platform in sides.values():  # warm: sessions, the writer's DuckDB connection
                timed_round(platform, 200, 1, 0)
                timed_round(platform, 20, 100, 0)
            best: dict[tuple[str, int], float] = {}
            for r in range(rounds):
                order = list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))
                for name, platform in order:
                    for batch, calls in ((1, calls1), (100, calls100)):
                        rate = timed_round(platform, calls, batch, 1000 * r)
                        best[(name, batch)] = max(best.get((name, batch), 0.0), rate)
            stats = {name: platform.monitoring.stats() for name, platform in sides.items()}
            encrypted_files = sorted((Path(tmp) / "encrypted" / "predictions").rglob("*.parquet"))
            tail = {p.read_bytes()[-4:] for p in encrypted_files}
        finally:
            for platform in sides.values():
                platform.close()

    lost = {name: s["rows_dropped"] + s["write_errors"] for name, s in stats.items()}
    print(f"bench/prediction_log.py ({'quick' if args.quick else 'full'}): {rounds} rounds of {calls1} one-row and "
          f"{calls100} 100-row predicts per home; rows logged {stats['encrypted']['rows_logged']} (encrypted, "
          f"{len(encrypted_files)} files, footers {sorted(t.decode() for t in tail)}) and "
          f"{stats['plaintext']['rows_logged']} (plaintext); rows lost {lost}", flush=True)
    figures = []
    for batch, figure, label, unit in (
            (1, "predict_batch1_req_per_s_encrypted_log", "predict batch 1, encrypted log", "req/s"),
            (100, "predict_batch100_rows_per_s_encrypted_log", "predict batch 100, encrypted log", "rows/s")):
        value, reference = best[("encrypted", batch)], best[("plaintext", batch)]
        ratio = value / reference
        figures.append(Figure(figure, label, unit, value, reference, "the same on a plaintext home", ratio, TARGET,
                              ratio >= TARGET and not any(lost.values()) and tail == {b"PARE"}, ">="))
    print_table(figures)
    print_lines(figures)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
