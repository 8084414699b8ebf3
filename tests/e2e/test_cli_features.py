"""``mlops-lite features ...`` as a user runs it: on a local home, and through a running
``mlops-lite up``. The definitions applied are docs/features.md's own TOML and Python
blocks (so the documentation's examples are proven to apply, and to be the same set).

The data: repository ``loans`` with a customer history (event and created timestamps,
dated relative to today so the 120-day TTL holds) and loan applications, committed on a
branch and merged to ``main`` (main is protected)."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .test_daemon import Daemon, cli, free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"
SERVICE = "loan-default-by-customer"
PRESENT_IDS = list(range(1, 31))
EXPIRED_ID = 41  # history only 200 days ago: older than the 120-day TTL
MISSING_ID = 99  # no history at all
APPS = "applications/applications.csv"  # the path docs/features.md's examples read


def _block(language: str, index: int = 0) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    assert found, f"docs/features.md has no {language} block"
    return str(found[index])


def _day(days_ago: int) -> str:
    moment = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _history() -> bytes:
    lines = ["customer_id,event_timestamp,created_timestamp,n_loans,n_late_payments,credit_utilization"]
    for c in PRESENT_IDS:
        lines.append(f"{c},{_day(40)},{_day(40)},{c % 3},{c % 2},{c / 40:.4f}")
        lines.append(f"{c},{_day(10)},{_day(10)},{c % 4},{c % 2},{c / 30:.4f}")
    # A tie on the event time: the later created row wins.
    lines.append(f"1,{_day(10)},{_day(9)},7,0,0.0100")
    lines.append(f"{EXPIRED_ID},{_day(200)},{_day(200)},1,1,0.5000")
    return ("\n".join(lines) + "\n").encode()


def _applications() -> bytes:
    lines = ["customer_id,event_timestamp,loan_amount,term_months,default"]
    for c in PRESENT_IDS:
        for days_ago, amount in ((5, 1000.0 + c), (3, 2000.0 + c)):
            lines.append(f"{c},{_day(days_ago)},{amount},{12 if c % 2 else 36},{int(c > 15)}")
    return ("\n".join(lines) + "\n").encode()


def _home(tmp_path: Path) -> Path:
    """A home with the history and the applications merged to main of ``loans``."""
    from mlops_lite import connect

    home = tmp_path / "home"
    with connect(home=home) as platform:
        repo = platform.data.repo("loans")
        repo.create(classification="internal")
        branch = repo.branch("history")
        branch.create("main")
        branch.upload("customers/c.csv", _history())
        branch.upload(APPS, _applications())
        branch.commit("customer history and applications")
        branch.merge_into("main")
    return home


def _ok(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = cli(home, *args)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _bad(home: Path, *args: str, code: int = 2) -> str:
    done = cli(home, *args)
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr and done.stderr.startswith("error:"), done.stderr
    return done.stderr


def _definitions(home: Path) -> list[tuple[str, str, str]]:
    listed = json.loads(_ok(home, "features", "list", "--json").stdout)
    return sorted((r["kind"], r["name"], r["digest"]) for r in listed)


def _statuses(home: Path, *args: str) -> dict[int, dict[str, str]]:
    found = json.loads(_ok(home, "features", "get", SERVICE, *args, "--json").stdout)
    ids = [int(a.split("=")[1]) for a in args[1::2] if a.startswith("customer_id=")]
    return dict(zip(ids, found["statuses"], strict=True))


@pytest.mark.slow  # ~40 s: some thirty commands as processes, a model trained and deployed
def test_the_features_commands_on_a_local_home(tmp_path: Path) -> None:
    home = _home(tmp_path)
    toml = tmp_path / "features.toml"
    toml.write_text(_block("toml"))

    # apply: every definition created, the service's version printed; again: unchanged.
    dry = _ok(home, "features", "apply", str(toml), "--dry-run")
    assert "dry run: nothing changed" in dry.stdout and _definitions(home) == []
    applied = _ok(home, "features", "apply", str(toml))
    for name in ("customer", "customer_history", "customer_totals", "loan_burden", SERVICE):
        assert re.search(rf"{name}\s+created", applied.stdout), applied.stdout
    version = re.search(rf"feature service {SERVICE}: version (\w+)", applied.stdout)
    assert version, applied.stdout
    before = _definitions(home)
    assert len(before) == 5
    assert "created" not in _ok(home, "features", "apply", str(toml)).stdout

    # The docs' Python block is the same set: applying it changes nothing.
    python = tmp_path / "features_defs.py"
    python.write_text(_block("python"))
    same = _ok(home, "features", "apply", str(python))
    assert len(re.findall(r"\bunchanged\b", same.stdout)) == 5, same.stdout
    assert f"version {version.group(1)}" in same.stdout

    # Bad definitions: the field named, exit 2, nothing applied.
    for text, field in ((_block("toml").replace('n_loans = "int64"', 'n_loans = "int"', 1),
                         "feature_view.customer_history.features.n_loans"),
                        (_block("toml").replace('ttl = "120d"', 'ttl = "soon"'), "feature_view.customer_history.ttl"),
                        (_block("toml").replace('n_late_payments = "int64"', 'n_late = "int64"'), "n_late"),
                        (_block("toml") + "\n[[nonsense]]\nname = 'x'\n", "nonsense")):
        toml.write_text(text)
        assert field in _bad(home, "features", "apply", str(toml))
        assert _definitions(home) == before
    assert "no such file" in _bad(home, "features", "apply", str(tmp_path / "absent.toml"))

    # Reading them back.
    assert SERVICE in _ok(home, "features", "list", "--kind", "feature_service").stdout
    assert "kind" in _bad(home, "features", "list", "--kind", "view")
    history = _ok(home, "features", "history", "feature_view", "customer_history").stdout
    assert "yes" in history
    assert "was ever applied" in _bad(home, "features", "history", "feature_view", "nope")
    shown = _ok(home, "features", "show", SERVICE).stdout
    assert "customer_id (int64)" in shown and "loan_amount (float64)" in shown and "term_months (int64)" in shown
    assert re.search(r"customer_history\s+loans\s+customer\s+120d", shown), shown
    assert re.search(r"customer_totals\s+loans\s+customer\s+never expires", shown), shown
    assert re.search(r"monthly_payment\s+float64\s+on demand", shown), shown
    assert _ok(home, "features", "versions", SERVICE).stdout.split() == [version.group(1), "(current)"]
    assert "nope" in _bad(home, "features", "show", "nope")
    assert "nope" in _bad(home, "features", "versions", "nope")

    # Materialize: a line per view, then the table.
    done = _ok(home, "features", "materialize", "--full").stdout
    assert "materializing customer_history (full)" in done and "materializing customer_totals (full)" in done
    assert re.search(r"customer_history\s+full\s+loans@\w{12}\s+31\s+31\s+0", done), done
    again = _ok(home, "features", "materialize").stdout
    assert re.search(r"customer_history\s+incremental\s+loans@\w{12}\s+31\s+0\s+0", again), again
    assert "nope" in _bad(home, "features", "materialize", "customer_history", "nope")
    assert "as-of" in _bad(home, "features", "materialize", "--as-of", "yesterday")

    # Lookups: present (the tie's later row), expired, missing; the request fields parsed by type.
    request = ("-r", "loan_amount=1200.5", "-r", "term_months=12")
    found = json.loads(_ok(home, "features", "get", SERVICE, "-e", "customer_id=1", "-e", f"customer_id={EXPIRED_ID}",
                           "-e", f"customer_id={MISSING_ID}", *request, "--json").stdout)
    assert found["rows"][0]["n_loans"] == 7 and found["rows"][0]["monthly_payment"] == pytest.approx(1200.5 / 12)
    assert [s["n_loans"] for s in found["statuses"]] == ["present", "expired", "missing"]
    table = _ok(home, "features", "get", SERVICE, "-e", "customer_id=1", *request).stdout
    assert re.search(r"customer_id=1\s+n_loans\s+7\s+present", table), table
    for args, field in ((("-e", "customer_id"), "-e"), (("-e", "customer_id=x"), "-e customer_id"),
                        (("-e", "client=1"), "-e client"), (("-e", "customer_id=1", "-r", "loan_amount=lots"),
                                                            "-r loan_amount"),
                        (("-e", "customer_id=1", "-r", "colour=red"), "-r colour"),
                        (("-e", "customer_id=1", "-r", "loan_amount=5"), "term_months")):
        assert field in _bad(home, "features", "get", SERVICE, *args)
    assert "nope" in _bad(home, "features", "get", "nope", "-e", "customer_id=1")

    # Training sets, pinned at the commit.
    built = _ok(home, "features", "training-set", SERVICE, "--repo", "loans", "--path", APPS).stdout
    assert "rows: 60" in built and "loans@" in built and f"version {version.group(1)}" in built
    ident = re.search(r"training set (\w+)", built)
    assert ident and ident.group(1) in _ok(home, "features", "training-sets", "--service", SERVICE).stdout
    assert "nope.csv" in _bad(home, "features", "training-set", SERVICE, "--repo", "loans", "--path", "nope.csv")

    # Skew: clean after a fresh materialization; a stale one is caught (exit 1, the rows shown).
    clean = _ok(home, "features", "skew", SERVICE)
    assert re.search(r"[1-9]\d* served vectors checked, \d+ values, 0 mismatched", clean.stdout), clean.stdout
    _ok(home, "features", "materialize", "--full", "--as-of", _day(20).replace(" ", "T"))
    _ok(home, "features", "get", SERVICE, "-e", "customer_id=2", *request)
    skewed = cli(home, "features", "skew", SERVICE)
    assert skewed.returncode == 1, skewed.stdout + skewed.stderr
    # Served: the row of 40 days ago (utilization 2/40); recomputed now: the row of 10 days ago (2/30).
    assert re.search(r"customer_id=2\s+\S+\s+credit_utilization\s+0\.05\s+present\s+0\.0667\s+present",
                     skewed.stdout), skewed.stdout
    assert "sample" in _bad(home, "features", "skew", SERVICE, "--sample", "0")
    _ok(home, "features", "materialize", "--full")

    # A model trained through the service and deployed: predicted by customer id, refused once
    # the service changes, until an admin allows it.
    from mlops_lite import connect

    with connect(home=home) as platform:
        trained = platform.training.train_features(SERVICE, "loans", "main", APPS, target="default")
        registered = platform.registry.register_from_run("by-customer", trained.run.id)
        platform.deployments.deploy("by-customer", "by-customer", registered.version)
    answer = _ok(home, "features", "predict", "by-customer", "-e", "customer_id=3", "-e", "customer_id=29",
                 *request).stdout
    assert f"by-customer@{registered.version}" in answer and "customer_id=29" in answer
    assert "expired" in _bad(home, "features", "predict", "by-customer", "-e", f"customer_id={EXPIRED_ID}", *request)
    toml.write_text(_block("toml").replace('ttl = "120d"', 'ttl = "121d"'))
    _ok(home, "features", "apply", str(toml))
    assert "allow" in _bad(home, "features", "predict", "by-customer", "-e", "customer_id=3", *request, code=1)
    assert "reason" in _bad(home, "features", "allow", "by-customer", "--reason", " ")
    allowed = _ok(home, "features", "allow", "by-customer", "--reason", "one more day of TTL").stdout
    assert f"allowed by-customer@{registered.version} on by-customer" in allowed
    _ok(home, "features", "predict", "by-customer", "-e", "customer_id=3", *request)
    assert "nope" in _bad(home, "features", "predict", "nope", "-e", "customer_id=3")


@pytest.mark.slow  # ~20 s: a daemon started, a dozen commands through it
def test_apply_materialize_and_get_through_the_daemon(tmp_path: Path, daemons: list[Daemon],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path)
    toml = tmp_path / "features.toml"
    toml.write_text(_block("toml"))
    daemon = Daemon(home, free_port(), "--no-prefect")
    daemons.append(daemon)
    daemon.wait_until(daemon.healthy, 60, "GET /v1/health answered 200")
    said = f"ran against the daemon at {daemon.url} (pid {daemon.pid})"

    applied = _ok(home, "-v", "features", "apply", str(toml))
    assert said in applied.stderr and re.search(rf"{SERVICE}\s+created", applied.stdout), applied.stdout
    toml.write_text(_block("toml").replace('n_loans = "int64"', 'n_loans = "int"', 1))
    assert "feature_view.customer_history.features.n_loans" in _bad(home, "features", "apply", str(toml))
    assert len(_definitions(home)) == 5

    done = _ok(home, "-v", "features", "materialize", "--full")
    assert said in done.stderr and re.search(r"customer_history\s+full\s+loans@\w{12}\s+31\s+31", done.stdout)
    statuses = _statuses(home, "-e", "customer_id=1", "-e", f"customer_id={EXPIRED_ID}", "-e",
                         f"customer_id={MISSING_ID}", "-r", "loan_amount=10", "-r", "term_months=12")
    assert [s["n_loans"] for s in statuses.values()] == ["present", "expired", "missing"]
    assert "-e customer_id" in _bad(home, "features", "get", SERVICE, "-e", "customer_id=x")
    assert "nope" in _bad(home, "features", "get", "nope", "-e", "customer_id=1")
    assert "3 served vectors checked, 18 values, 0 mismatched" in _ok(home, "features", "skew", SERVICE).stdout

    # The docs' Python API example, as written, through the daemon.
    monkeypatch.setenv("MLOPS_LITE_HOME", str(home))
    for name in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    toml.write_text(_block("toml"))
    example: dict[str, Any] = {}
    exec(_block("python", -1), example)  # the documentation's own code
    assert example["trained"].signature["feature_service"]["name"] == SERVICE
    assert example["rows"].num_rows == 60 and example["report"].mismatched == 0
