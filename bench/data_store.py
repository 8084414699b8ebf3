"""Benchmark of the data store, each figure beside a reference measured in the same run.

    .venv/bin/python bench/data_store.py [--quick] [--json PATH] [--with-dvc] [--workers 2] [--dir TMP]

The dataset is generated into a temporary folder: 1,000 files of 1 MiB random bytes
under ``big/`` and 10,000 files of 1-10 KiB under ``small/00..09/`` (``--quick``: 100
and 1,000), plus, for the branch and diff figures, a tree of 100,000 tiny files in
folders of 1,000 (quick: 10,000). References, measured in this run on the same files:
``cp -r`` of the tree (a subprocess; the copy is not synced, the store fsyncs every
object, so the table also shows ``cp -r`` + ``sync`` for scale) and reading + hashing
every byte with hashlib sha256.

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``; ratio is
value/reference throughout; the table's rule column says whether the target applies
to the ratio or, for the absolute figures, to the value):

- ``fresh_commit_s``: ``import_directory`` + ``commit`` of the whole tree into a fresh
  home, vs ``cp -r`` of the tree. ratio <= 1.2.
- ``small_files_commit_s``: the small files alone (import + commit, a fresh home).
  value <= 2 s; reference: reading + hashing those files.
- ``commit_1pct_reimport_s``: after rewriting 1% of the files (1% of the big, 1% of the
  small), ``import_directory`` of the whole tree again + ``commit``, vs the fresh commit.
  ratio <= 0.10. (The folder API hashes every file again: it keeps no stat cache.)
- ``commit_1pct_upload_s``: after rewriting another 1%, ``upload`` of just those files +
  ``commit``, vs the fresh commit. ratio <= 0.10.
- ``branch_create_ms``: median ``branch(...).create(ref)`` on a commit of 100,000 objects.
  value <= 10 ms; reference: the commit of those 100,000 objects (ms), to show it does
  not scale with them.
- ``diff_1pct_s``: ``ref(a).diff(b)`` of two 100,000-object commits differing in 1% of
  paths (random, so in every folder), on a freshly opened platform (cold tree cache).
  value <= 0.5 s; reference: listing both commits in full (also cold) and comparing.
- ``storage_growth_1pct_bytes``: growth of the object store after the re-import commit
  above, vs the bytes of the rewritten files. ratio <= 1.05 (tree nodes are the rest).
- ``encrypted_commit_mib_s``: a fresh commit of the tree into an encrypted home (the default
  for a new home: AES-256-GCM objects under keyed names, docs/encryption.md) as MiB/s,
  vs the same ``import_directory`` + ``commit`` into a home made with ``encryption=False``;
  each twice, in turn, in new homes, the faster counting. ratio >= 0.7.
- ``encrypted_read_mib_s``: every file of that commit read back through the data store
  (listed once, each read by digest, decrypted as read), vs the same reads from the
  plaintext home. ratio >= 0.7.

The figures above ``encrypted_commit_mib_s`` are measured on the encrypted home (the
default), so they include its cost.

With a virtualenv at ``bench/.venvs/dvc`` in which ``dvc`` imports (``--with-dvc`` makes
it: ``python -m venv`` + ``pip install dvc``; never the project's venv), the table gains
a peer column: ``dvc add`` of the same tree (fresh, then again after the same 1% change,
and its cache growth). Each timed step runs once, after ``sync``, the references twice
(the faster counts). Everything lives in a temporary folder removed at the end; one
home per figure group, each closed before the next opens. Never run by the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform as pyplatform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from figures import Figure, fmt, print_lines

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DVC_VENV = ROOT / "bench" / ".venvs" / "dvc"
SEED = 20261122


@dataclass(frozen=True)
class Size:
    name: str
    big_files: int  # 1 MiB each
    small_files: int  # 1-10 KiB each, in 10 folders
    many_objects: int  # tiny files, in folders of 1,000
    branch_creates: int


QUICK = Size("quick", big_files=100, small_files=1_000, many_objects=10_000, branch_creates=20)
DEFAULT = Size("default", big_files=1_000, small_files=10_000, many_objects=100_000, branch_creates=50)




# --------------------------------------------------------------------------- helpers


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    os.sync()  # nobody pays for the writeback of what came before
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def best_of(runs: int, call: Callable[[], Any]) -> float:
    return min(timed(call)[0] for _ in range(runs))


def files_under(folder: Path) -> list[Path]:
    return sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names)


def sha256_files(files: list[Path]) -> str:
    total = hashlib.sha256()
    for file in files:
        hasher = hashlib.sha256()
        with open(file, "rb") as stream:
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
        total.update(hasher.digest())
    return total.hexdigest()


def store_bytes(home: Path) -> int:
    """Apparent bytes of every object file in a home's data store (temporary files excluded)."""
    root = home / "objects" / "data"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def generate_tree(tree: Path, size: Size, rng: random.Random) -> tuple[list[Path], list[Path]]:
    big, small = [], []
    for i in range(size.big_files):
        path = tree / "big" / f"{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(1 << 20))
        big.append(path)
    for i in range(size.small_files):
        path = tree / "small" / f"{i % 10:02d}" / f"{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 10240)))
        small.append(path)
    return big, small


def rewrite(files: list[Path], rng: random.Random) -> int:
    """New random bytes, same sizes; returns the bytes written."""
    written = 0
    for file in files:
        size = file.stat().st_size
        file.write_bytes(rng.randbytes(size))
        written += size
    return written


def generate_many(folder: Path, count: int) -> None:
    for i in range(count):
        path = folder / f"{i // 1000:03d}" / f"{i:06d}.txt"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"object {i}\n".encode())


def fresh_branch(p: Any) -> Any:
    """The branch ``dev`` of a new repository ``bench``, from its empty ``main``."""
    repo = p.data.repo("bench")
    repo.create(classification="internal")
    dev = repo.branch("dev")
    dev.create("main")
    return dev


def fresh_commit(branch: Any, tree: Path, workers: int) -> tuple[float, float]:
    """``import_directory`` of the tree + ``commit``; answers (import s, commit s)."""
    a = time.perf_counter()
    branch.import_directory(tree, workers=workers)
    b = time.perf_counter()
    branch.commit("fresh")
    return b - a, time.perf_counter() - b


def commit_and_read(home: Path, encryption: bool, tree: Path, workers: int) -> tuple[float, float, tuple[int, str]]:
    """A fresh commit of the tree into a new home, then every file read back: (commit s,
    read s, what was read)."""
    import mlops_lite

    p = mlops_lite.connect(home=home, encryption=encryption)
    try:
        assert p.protection.encrypted is encryption
        branch = fresh_branch(p)
        commit_s, _ = timed(lambda: fresh_commit(branch, tree, workers))
        read_s, read = timed(lambda: read_back(p, branch.name))
    finally:
        p.close()
    return commit_s, read_s, read


def read_back(p: Any, branch: str) -> tuple[int, str]:
    """Every file of the branch's head, listed once and read by digest through the data
    store (decrypted as read): (bytes, sha256 of them all). By digest, not ``ref.open(path)``,
    whose resolving of the ref and path (a few queries per file) would be most of the time."""
    ref = p.data.repo("bench").ref(branch)
    total = hashlib.sha256()
    size = 0
    for record in sorted(ref.objects(), key=lambda o: o.path):
        with p.data.open_object(record.digest) as stream:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                total.update(chunk)
    return size, total.hexdigest()


# --------------------------------------------------------------------------- dvc, the peer


def dvc_python() -> Path:
    return DVC_VENV / "bin" / "python"


def ensure_dvc_venv() -> None:
    """``--with-dvc``: a virtualenv of its own with dvc in it (never the project's venv)."""
    if not dvc_python().exists():
        print(f"  making {DVC_VENV} (python -m venv) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    if not dvc_available():
        print("  pip install dvc into it ...", flush=True)
        subprocess.run([str(dvc_python()), "-m", "pip", "install", "-q", "dvc"], check=True)


def dvc_available() -> bool:
    if not dvc_python().exists():
        return False
    done = subprocess.run([str(dvc_python()), "-c", "import dvc"], capture_output=True)
    return done.returncode == 0


def dvc_version() -> str:
    done = subprocess.run([str(dvc_python()), "-c", "import dvc; print(dvc.__version__)"], capture_output=True,
                          text=True)
    return done.stdout.strip()


def dvc(workdir: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}
    done = subprocess.run([str(DVC_VENV / "bin" / "dvc"), *args], cwd=workdir, capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------- main


def machine_info(workdir: Path) -> dict[str, Any]:
    import duckdb

    fs = "?"
    try:
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, *_ = line.split()
            if str(workdir.resolve()).startswith(mount) and len(mount) > len(best):
                best, fs = mount, kind
    except OSError:
        pass
    return {"cores": os.cpu_count(), "python": pyplatform.python_version(), "platform": pyplatform.platform(),
            "duckdb": duckdb.__version__, "filesystem": fs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (~30 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--with-dvc", action="store_true",
                        help=f"make {DVC_VENV.relative_to(ROOT)} with dvc in it, for a peer column")
    parser.add_argument("--workers", type=int, default=2, help="import_directory workers (default 2)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary data goes (default: $TMPDIR)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()

    import mlops_lite

    if args.with_dvc:
        ensure_dvc_venv()
    with_dvc = dvc_available()

    rng = random.Random(SEED)
    figures: list[Figure] = []
    notes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-data-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        work = tmp / "work"  # the dvc project root, when dvc runs; the tree lies in it
        tree = work / "tree"
        info = machine_info(tmp)
        print(f"bench/data_store.py ({size.name} size): the data store against references measured in this run")
        print(f"  machine: {info['cores']} cores, Python {info['python']}, duckdb {info['duckdb']}, "
              f"{info['filesystem']} at {tmp}; {info['platform']}")
        t0 = time.perf_counter()
        big, small = generate_tree(tree, size, rng)
        all_files = big + small
        tree_bytes = folder_bytes(tree)
        print(f"  dataset: {len(big):,} x 1 MiB + {len(small):,} x 1-10 KiB = {len(all_files):,} files, "
              f"{mib(tree_bytes)} (generated in {time.perf_counter() - t0:.1f} s); import_directory workers="
              f"{args.workers}; peer: " + (f"dvc {dvc_version()}" if with_dvc else "none (--with-dvc adds dvc)"),
              flush=True)

        # ---- references
        def copy() -> None:
            subprocess.run(["cp", "-r", str(tree), str(tmp / "copy")], check=True)

        cp_s = 1e9
        for _ in range(2):
            cp_s = min(cp_s, timed(copy)[0])
            shutil.rmtree(tmp / "copy")
        cp_sync_s, _ = timed(lambda: (copy(), os.sync()))
        shutil.rmtree(tmp / "copy")
        hash_all_s = best_of(2, lambda: sha256_files(all_files))
        hash_small_s = best_of(2, lambda: sha256_files(small))
        notes.update(cp_s=cp_s, cp_sync_s=cp_sync_s, hash_all_s=hash_all_s, hash_small_s=hash_small_s)

        # ---- encryption's cost: the fresh commit and its read-back, a plaintext home then an
        # encrypted one, twice in turn (each in a new home; the faster of each kind counts)
        by_kind: dict[bool, list[tuple[float, float, tuple[int, str]]]] = {False: [], True: []}
        for round_ in range(2):
            for encryption in (False, True):
                home = tmp / f"home-{'encrypted' if encryption else 'plain'}-{round_}"
                by_kind[encryption].append(commit_and_read(home, encryption, tree, args.workers))
                shutil.rmtree(home)
        if len({back for runs in by_kind.values() for _, _, back in runs}) != 1:
            raise AssertionError("the encrypted and plaintext homes read back different bytes")
        plain_s, plain_read_s = (min(run[i] for run in by_kind[False]) for i in (0, 1))
        encrypted_s, encrypted_read_s = (min(run[i] for run in by_kind[True]) for i in (0, 1))
        notes.update(plain_commit_s=plain_s, plain_read_s=plain_read_s, encrypted_commit_s=encrypted_s,
                     encrypted_read_s=encrypted_read_s)

        # ---- fresh commit of the whole tree, then the 1% changes
        home = tmp / "home-tree"
        p = mlops_lite.connect(home=home)
        try:
            assert p.protection.encrypted, "a new home is encrypted"
            repo = p.data.repo("bench")
            dev = fresh_branch(p)
            fresh_s, (fresh_import_s, fresh_commit_only_s) = timed(lambda: fresh_commit(dev, tree, args.workers))
            fresh_store = store_bytes(home)
            notes.update(fresh_import_s=fresh_import_s, fresh_commit_only_s=fresh_commit_only_s,
                         fresh_store_bytes=fresh_store)

            dvc_fresh_s = dvc_1pct_s = dvc_growth = None
            if with_dvc:
                dvc(work, "init", "--no-scm", "-q")
                dvc_fresh_s, _ = timed(lambda: dvc(work, "add", "-q", "tree"))

            # 1% rewritten; the folder imported again
            changed_a = rng.sample(big, max(1, len(big) // 100)) + rng.sample(small, max(1, len(small) // 100))
            changed_bytes = rewrite(changed_a, rng)
            before = store_bytes(home)

            def reimport() -> None:
                dev.import_directory(tree, workers=args.workers)
                dev.commit("1% re-imported")

            reimport_s, _ = timed(reimport)
            growth = store_bytes(home) - before
            if with_dvc:
                cache_before = folder_bytes(work / ".dvc" / "cache")
                dvc_1pct_s, _ = timed(lambda: dvc(work, "add", "-q", "tree"))
                dvc_growth = folder_bytes(work / ".dvc" / "cache") - cache_before

            # another 1% rewritten; only those files uploaded
            changed_b = rng.sample(big, max(1, len(big) // 100)) + rng.sample(small, max(1, len(small) // 100))
            rewrite(changed_b, rng)

            def upload_changed() -> None:
                for file in changed_b:
                    dev.upload(file.relative_to(tree).as_posix(), file)
                dev.commit("1% uploaded")

            upload_s, _ = timed(upload_changed)
            head = dev.head()
            assert head is not None
            for file in changed_a[:3] + changed_b[:3]:  # what was committed is what is on disk
                digest = hashlib.sha256(file.read_bytes()).hexdigest()
                assert repo.ref(head.id).stat(file.relative_to(tree).as_posix()).digest == digest
        finally:
            p.close()
        shutil.rmtree(home)

        figures.append(Figure(
            "fresh_commit_s", f"fresh commit, {len(all_files):,} files", "s", fresh_s, cp_s, "cp -r of the tree",
            fresh_s / cp_s, 1.2, fresh_s / cp_s <= 1.2, "ratio <=",
            f"{fmt(dvc_fresh_s)} s" if dvc_fresh_s is not None else "-"))
        figures.append(Figure(
            "commit_1pct_reimport_s", f"1% changed, folder re-imported ({len(changed_a)})", "s", reimport_s,
            fresh_s, "the fresh commit", reimport_s / fresh_s, 0.10, reimport_s / fresh_s <= 0.10, "ratio <=",
            f"{fmt(dvc_1pct_s)} s" if dvc_1pct_s is not None else "-"))
        figures.append(Figure(
            "commit_1pct_upload_s", f"1% changed, files uploaded ({len(changed_b)})", "s", upload_s, fresh_s,
            "the fresh commit", upload_s / fresh_s, 0.10, upload_s / fresh_s <= 0.10, "ratio <="))
        figures.append(Figure(
            "storage_growth_1pct_bytes", "store growth after the 1% re-import", "B", growth, changed_bytes,
            "bytes of the rewritten files", growth / changed_bytes, 1.05, growth / changed_bytes <= 1.05,
            "ratio <=", f"{dvc_growth / changed_bytes:.3f} x" if dvc_growth is not None else "-"))
        mib_tree = tree_bytes / (1 << 20)
        figures.append(Figure(
            "encrypted_commit_mib_s", "fresh commit, encrypted home (MiB/s)", "MiB/s", mib_tree / encrypted_s,
            mib_tree / plain_s, "the same commit, plaintext home", plain_s / encrypted_s, 0.7,
            plain_s / encrypted_s >= 0.7, "ratio >="))
        figures.append(Figure(
            "encrypted_read_mib_s", "read the commit back, encrypted (MiB/s)", "MiB/s", mib_tree / encrypted_read_s,
            mib_tree / plain_read_s, "the same reads, plaintext home", plain_read_s / encrypted_read_s, 0.7,
            plain_read_s / encrypted_read_s >= 0.7, "ratio >="))

        # ---- the small files alone, a fresh home
        home = tmp / "home-small"
        p = mlops_lite.connect(home=home)
        try:
            branch = p.data.repo("small").branch("dev")
            p.data.repo("small").create(classification="internal")
            branch.create("main")

            def small_commit() -> None:
                branch.import_directory(tree / "small", workers=args.workers)
                branch.commit("small files")

            small_s, _ = timed(small_commit)
        finally:
            p.close()
        shutil.rmtree(home)
        figures.append(Figure(
            "small_files_commit_s", f"{len(small):,} small files, import + commit", "s", small_s, hash_small_s,
            "read + sha256 of those files", small_s / hash_small_s, 2.0, small_s <= 2.0, "value <="))
        print(f"  tree figures done at {time.perf_counter() - started:.0f} s", flush=True)

        # ---- 100,000 objects: branch creation and diff
        many = tmp / "many"
        t0 = time.perf_counter()
        generate_many(many, size.many_objects)
        many_gen_s = time.perf_counter() - t0
        home = tmp / "home-many"
        p = mlops_lite.connect(home=home)
        try:
            repo = p.data.repo("many")
            repo.create(classification="internal")
            repo.configure(protected_branches=[])
            main_branch = repo.branch("main")

            def many_commit() -> tuple[float, Any]:
                a = time.perf_counter()
                main_branch.import_directory(many, workers=args.workers)
                b = time.perf_counter()
                return b - a, main_branch.commit(f"{size.many_objects:,} objects")

            many_s, (many_import_s, first) = timed(many_commit)
            creates = []
            for k in range(size.branch_creates):
                a = time.perf_counter()
                repo.branch(f"feature-{k}").create(first.id)
                creates.append(time.perf_counter() - a)
            branch_ms = statistics.median(creates) * 1e3
            changes = tmp / "many-changes"
            picked = sorted(rng.sample(range(size.many_objects), size.many_objects // 100))
            for i in picked:
                path = changes / f"{i // 1000:03d}" / f"{i:06d}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"changed {i}\n".encode())
            change_s, _ = timed(lambda: main_branch.import_directory(changes, workers=args.workers))
            commit_s, second = timed(lambda: main_branch.commit("1% changed"))
        finally:
            p.close()
        notes.update(many_generate_s=many_gen_s, many_import_s=many_import_s, many_commit_s=many_s,
                     many_1pct_import_s=change_s, many_1pct_commit_s=commit_s,
                     branch_create_ms_min=min(creates) * 1e3, branch_create_ms_max=max(creates) * 1e3)

        p = mlops_lite.connect(home=home)  # cold: nothing cached
        try:
            repo = p.data.repo("many")
            diff_s, diff = timed(lambda: repo.ref(first.id).diff(second.id))
            diff_warm_s, _ = timed(lambda: repo.ref(first.id).diff(second.id))
        finally:
            p.close()
        p = mlops_lite.connect(home=home)  # cold again, for the reference

        try:
            repo = p.data.repo("many")

            def listing() -> int:
                a = {o.path: o.digest for o in repo.ref(first.id).objects()}
                b = {o.path: o.digest for o in repo.ref(second.id).objects()}
                return sum(1 for path in a.keys() | b.keys() if a.get(path) != b.get(path))

            list_s, listed = timed(listing)
        finally:
            p.close()
        shutil.rmtree(home)
        if len(diff) != len(picked) or listed != len(picked):
            print(f"  WARNING: the diff found {len(diff)} paths, the listing {listed}; {len(picked)} changed")
        notes.update(diff_warm_s=diff_warm_s, diff_paths=len(diff))
        figures.append(Figure(
            "branch_create_ms", f"branch create, {size.many_objects:,}-object commit", "ms", branch_ms,
            many_s * 1e3, f"commit of the {size.many_objects:,} objects", branch_ms / (many_s * 1e3), 10.0,
            branch_ms <= 10.0, "value <="))
        figures.append(Figure(
            "diff_1pct_s", f"diff of {size.many_objects:,}-object commits, 1%", "s", diff_s, list_s,
            "list both commits and compare", diff_s / list_s, 0.5, diff_s <= 0.5, "value <="))

    # ---- report
    print()
    header = (f"{'figure':<42} {'value':>13} {'reference':>13} {'ratio':>7} {'target':>11}  {'result':<6} "
              f"{'dvc (peer)':>11}  reference is")
    print(header)
    print("-" * (len(header) + 24))
    for f in figures:
        unit = f" {f.unit}" if f.unit else ""
        value = mib(f.value) if f.unit == "B" else fmt(f.value) + unit
        reference = mib(f.reference) if f.unit == "B" else fmt(f.reference) + unit
        print(f"{f.label:<42} {value:>13} {reference:>13} {fmt(f.ratio):>7} {f.rule + ' ' + f'{f.target:g}':>11}  "
              f"{'ok' if f.ok else 'SHORT':<6} {f.peer:>11}  {f.reference_label}")
    print()
    print(f"references: cp -r {notes['cp_s']:.2f} s, cp -r + sync {notes['cp_sync_s']:.2f} s, sha256 of every byte "
          f"{notes['hash_all_s']:.2f} s ({tree_bytes / notes['hash_all_s'] / (1 << 20):.0f} MiB/s), of the small "
          f"files {notes['hash_small_s']:.3f} s")
    print(f"fresh commit: import_directory {notes['fresh_import_s']:.2f} s + commit {notes['fresh_commit_only_s']:.2f}"
          f" s; store {mib(notes['fresh_store_bytes'])} for {mib(tree_bytes)} of files")
    print(f"encryption (best of 2 each): fresh commit {notes['plain_commit_s']:.2f} s plaintext, "
          f"{notes['encrypted_commit_s']:.2f} s encrypted; read back {notes['plain_read_s']:.2f} s plaintext, "
          f"{notes['encrypted_read_s']:.2f} s encrypted")
    print(f"{size.many_objects:,} objects: generated {notes['many_generate_s']:.1f} s, import_directory "
          f"{notes['many_import_s']:.2f} s, commit {notes['many_commit_s'] - notes['many_import_s']:.2f} s; "
          f"1% of them: import {notes['many_1pct_import_s']:.2f} s, commit {notes['many_1pct_commit_s']:.2f} s; "
          f"branch create min/median/max {notes['branch_create_ms_min']:.1f}/{branch_ms:.1f}/"
          f"{notes['branch_create_ms_max']:.1f} ms; diff cold {diff_s:.3f} s, warm {notes['diff_warm_s']:.3f} s "
          f"({notes['diff_paths']} paths)")
    print(f"total {time.perf_counter() - started:.1f} s")
    print_lines(figures)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "data_store", "size": size.name, "workers": args.workers, "machine": info,
            "dvc": dvc_version() if with_dvc else None, "figures": [asdict(f) for f in figures], "notes": notes,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
