"""``mlops-lite audit ...``: the hash-chained audit trail and its signed checkpoints, verified
and exported (docs/audit.md)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, err, group, jsonable, line, load_settings, moment, platform
from mlops_lite.errors import InvalidInput
from mlops_lite.records import AuditVerdict

app = group("The audit chain: verify it, export it, read it.")


@app.command("verify")
def audit_verify(
        file: Annotated[Path | None, typer.Option(
            "--file", help="Verify an exported JSONL file (`audit export`) instead of the live chain.")] = None,
        public_key: Annotated[Path | None, typer.Option(
            "--public-key", help="Verify with this public key alone (PEM, from `audit public-key`), without "
                                 "the audit key: what an auditor off the host does.")] = None,
        checkpoints: Annotated[Path | None, typer.Option(
            "--checkpoints", help="The signed checkpoints (JSONL) to check against; default: the home's "
                                  "audit/checkpoints.jsonl, or the server's.")] = None,
        partial: Annotated[bool, typer.Option(
            "--partial", help="The export was made with --since: it need not start at seq 1.")] = False,
        as_json: JsonOption = False) -> None:
    """Check every link of the chain and the chain against its signed checkpoints: a bad
    link, a cut tail, an emptied chain or a forged checkpoint exits 1, named."""
    verdict, where = _verdict(file, public_key, checkpoints, partial)
    if as_json:
        line(json.dumps(jsonable(verdict), sort_keys=True))
    elif verdict.verified:
        signed = verdict.checkpoint
        line(f"audit chain in {where} verifies: {verdict.events} events; "
             + (f"checkpoint {signed.id} ({signed.at.isoformat(timespec='seconds')}) signs seq 1..{signed.seq}, "
                f"{verdict.events - signed.seq} newer events not yet signed" if signed is not None else ""))
    else:
        line(f"audit chain in {where} does NOT verify:")
        for problem in verdict.problems:
            line(f"  - {problem}")
    if not verdict.verified:
        raise typer.Exit(1)


def _verdict(file: Path | None, public_key: Path | None, checkpoints: Path | None,
             partial: bool) -> tuple[AuditVerdict, str]:
    from mlops_lite.security import checkpoints as signed

    key = None if public_key is None else signed.read_public_key(_read(public_key, "public_key"), source="public_key")
    if file is None and key is None and checkpoints is None and not partial:
        with platform() as p:
            return p.audit.verify_signed(), "the database"
    if file is not None:
        try:
            events = [json.loads(text) for text in _read(file, "file").splitlines() if text.strip()]
        except ValueError as exc:
            raise InvalidInput(f"cannot read {file} as JSONL: {exc}", field="file",
                               expected="an export written by `mlops-lite audit export`") from exc
        where = str(file)
    else:
        with platform() as p:
            events = p.audit.export()
        where = "the database"
    if checkpoints is not None:
        lines = signed.parse_lines(_read(checkpoints, "checkpoints"))
        found, unreadable = lines.checkpoints, lines.unreadable
    else:
        with platform() as p:
            found, unreadable = tuple(p.audit.checkpoints()), ()
            if key is None:
                key = signed.read_public_key(p.audit.public_key())
    first_bad = None
    if public_key is None:  # on the host: the links with the audit key too
        from mlops_lite.security.audit import load_or_create_key, verify_events

        key_file = load_settings().audit_key_file
        if not key_file.exists():  # never make one here: a new key fails every link
            raise InvalidInput(f"no audit key at {key_file} to check the links with; off the host, verify with "
                               "the public key alone", field="public_key",
                               expected="--public-key FILE (from `mlops-lite audit public-key`)")
        bad = verify_events(load_or_create_key(key_file), events)
        first_bad = None if bad is None else (f"event seq {bad.get('seq')} ({bad.get('action')} on "
                                              f"{bad.get('object')}) does not verify with the audit key")
    assert key is not None
    verdict = signed.check(events, found, key, whole_chain=not partial,
                           unreadable_lines=unreadable, links_checked=False)
    if first_bad is not None:
        verdict = dataclasses.replace(verdict, verified=False, problems=(first_bad, *verdict.problems))
    return verdict, where


def _read(path: Path, field: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field=field, expected="a readable text file") from exc


@app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's head now and append the checkpoint to <home>/audit/checkpoints.jsonl."""
    with platform() as p:
        signed = p.audit.checkpoint()
    line(f"checkpoint {signed.id}: seq {signed.seq}, {signed.count} events, head {signed.head[:16]}..., "
         f"signed {signed.at.isoformat(timespec='seconds')} by key {signed.key_id}")


@app.command("checkpoints")
def audit_checkpoints(output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the JSONL here (for an auditor), not stdout.")] = None) -> None:
    """The signed checkpoints as JSONL, one a line (what `audit verify --checkpoints` reads)."""
    from mlops_lite.security.checkpoints import to_line

    with platform() as p:
        found = p.audit.checkpoints()
    text = "".join(json.dumps(to_line(signed), sort_keys=True) + "\n" for signed in found)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"{len(found)} checkpoints written to {output}")


@app.command("public-key")
def audit_public_key(output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the PEM here, not stdout.")] = None) -> None:
    """The public key (PEM) that verifies the checkpoints: give it to the auditor."""
    with platform() as p:
        pem = p.audit.public_key()
    if output is None:
        sys.stdout.write(pem)
    else:
        output.write_text(pem)
        err.print(f"public key written to {output}")


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
