"""``mlops-lite audit ...``: the hash-chained audit trail, verified and exported."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_lite.cli.common import err, group, line, load_settings, moment, platform
from mlops_lite.errors import InvalidInput

app = group("The audit chain: verify it, export it, read it.")


@app.command("verify")
def audit_verify(file: Annotated[Path | None, typer.Option(
        "--file", help="Verify an exported JSONL file instead of the database.")] = None) -> None:
    """Check every link of the chain; name the first bad event and exit 1 when one is found."""
    if file is not None:
        count, first_bad = _verify_export(file)
        where = str(file)
    else:
        with platform() as p:
            record = p.audit.verify()
            count = p.audit.count()
        where = "the database"
        first_bad = None if record is None else f"seq {record.seq} ({record.action} on {record.object})"
    if first_bad is not None:
        line(f"audit chain in {where} does NOT verify: first bad event is {first_bad}")
        raise typer.Exit(1)
    line(f"audit chain in {where} verifies: {count} events")


def _verify_export(file: Path) -> tuple[int, str | None]:
    """An export checked here, with the home's audit key: its events and the first bad one."""
    from mlops_lite.security.audit import load_or_create_key, verify_events

    try:
        events = [json.loads(text) for text in file.read_text().splitlines() if text.strip()]
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {file} as JSONL: {exc}", field="file",
                           expected="an export written by `mlops-lite audit export`") from exc
    bad = verify_events(load_or_create_key(load_settings().audit_key_file), events)
    return len(events), None if bad is None else f"seq {bad.get('seq')} ({bad.get('action')} on {bad.get('object')})"


@app.command("export")
def audit_export(since: Annotated[str | None, typer.Option(help="Only events at or after this ISO time.")] = None,
                 output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here, not stdout.")] = None,
                 ) -> None:
    """Write the chain as JSONL, one event a line (verifiable with `audit verify --file`)."""
    start = moment(since, "since")
    with platform() as p:
        events = p.audit.export(since=start)
    text = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"{len(events)} events written to {output}")
