"""Benchmark of ``privacy erase``: one data subject erased from a 100-commit repository.

    .venv/bin/python bench/erasure.py [--quick] [--json PATH] [--dir TMP]

The repository is generated in a fresh (encrypted) home: 100 commits, each adding one CSV
file of customers (1 GiB in all; ``--quick``: 16 MiB), the subject's row in every tenth
file. Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``erase_subject_s``: ``platform.privacy.erase`` of the subject: every object of every
  commit read (decrypted) and searched, the ten files rewritten, the commits rewritten,
  refs moved, old objects purged. value <= 10 s at full size; reference: writing the
  repository's 100 commits (upload + commit), in the same run.
- ``erase_noop_s``: the same erasure again, when nothing is left to remove (a read of the
  whole history), against the same reference. value <= 10 s.

Everything lives in a temporary folder removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import Figure, print_lines, print_table

COMMITS = 100
SUBJECT = "cust-s-0000042"
TARGET_S = 10.0


def csv_file(index: int, size: int) -> bytes:
    """About ``size`` bytes of customers; every tenth file holds the subject's row."""
    row_bytes = 44  # the length of a generated row
    rows = max(1, size // row_bytes)
    lines = ["customer_id,income,debt,region,default"]
    lines += [f"cust-{index:03d}-{n:07d},{(n * 37) % 120_000:6d}.5,{(n * 11) % 60_000:6d}.25,"
              f"{('north', 'south', 'east')[n % 3]:>5},{n % 2}" for n in range(rows)]
    if index % 10 == 0:
        lines.insert(rows // 2, f"{SUBJECT},54000.5,12000.25,north,0")
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 MiB instead of 1 GiB, for a smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary home goes (default: $TMPDIR)")
    args = parser.parse_args(argv)
    total = (16 if args.quick else 1024) * 1024 * 1024

    import mlops_lite
    from mlops_lite.data import RepositoryConfig
    from mlops_lite.privacy.profile import PrivacyProfile

    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-erasure-", dir=args.dir) as tmp:
        with mlops_lite.connect(home=Path(tmp) / "home") as p:
            p.data.repo("customers").create(config=RepositoryConfig(
                protected_branches=(), privacy=PrivacyProfile(classification="internal",
                                                              subject_columns=("customer_id",))))
            branch = p.data.repo("customers").branch("main")
            files = [csv_file(i, total // COMMITS) for i in range(COMMITS)]
            size = sum(len(f) for f in files)
            t0 = time.perf_counter()
            for i, content in enumerate(files):
                branch.upload(f"customers/part-{i:03d}.csv", content)
                branch.commit(f"part {i}")
            write_s = time.perf_counter() - t0
            del files
            print(f"bench/erasure.py ({'quick' if args.quick else 'full'} size): {COMMITS} commits, "
                  f"{size / 2**20:.0f} MiB of CSV, the subject in {COMMITS // 10} files; written in {write_s:.1f} s",
                  flush=True)
            t0 = time.perf_counter()
            report = p.privacy.erase("customers", SUBJECT)
            erase_s = time.perf_counter() - t0
            assert report.rows == COMMITS // 10, report
            t0 = time.perf_counter()
            again = p.privacy.erase("customers", SUBJECT)
            noop_s = time.perf_counter() - t0
            assert again.rows == 0, again
            assert p.data.fsck().clean
    figures = [
        Figure("erase_subject_s", "erase one subject (100 commits)", "s", erase_s, write_s,
               "writing the 100 commits", erase_s / write_s, TARGET_S, erase_s <= TARGET_S, "value <="),
        Figure("erase_noop_s", "erase again (nothing left)", "s", noop_s, write_s,
               "writing the 100 commits", noop_s / write_s, TARGET_S, noop_s <= TARGET_S, "value <="),
    ]
    print_table(figures)
    print_lines(figures)
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    print(f"\n  {report.objects} objects and {len(report.commits)} commits rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
