"""``mlops-lite keys ...``: encryption at rest (docs/encryption.md): the home's keys, their
rotation, and the in-place encryption of a home made before encryption existed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlops_lite.cli.common import JsonOption, group, jsonable, line, load_settings, platform

app = group("Encryption at rest: the home's keys, rotation, encrypting an old home.")


@app.command("status")
def keys_status(as_json: JsonOption = False) -> None:
    """Whether the home is encrypted, under which key encryption key, and each data key's age."""
    with platform() as p:
        status = p.keys.status()
    if as_json:
        line(json.dumps(jsonable(status), sort_keys=True))
        return
    for note in status.relies_on:
        line(note)
    if not status.encrypted:
        line("NOT encrypted at rest: `mlops-lite keys encrypt-home` encrypts this home in place")
        return
    line(f"encrypted at rest; kms {status.kms}, key encryption key {status.kek_id}; metadata database "
         + ("encrypted" if status.metadata_encrypted else "not encrypted here (PostgreSQL: its own at-rest encryption)"))
    for key in status.data_keys:
        line(f"  {key.purpose:<10} {key.id}  wrapped under {key.kek_id} at {key.wrapped_at} (made {key.created_at})")


@app.command("rotate")
def keys_rotate(as_json: JsonOption = False) -> None:
    """A new key encryption key; every data key re-wrapped under it (no data is rewritten);
    the old one retired. With MLOPS_LITE_MASTER_KEY: set the new value there and the old one
    in MLOPS_LITE_MASTER_KEY_PREVIOUS first. Audited (keys.rotate)."""
    with platform() as p:
        rotation = p.keys.rotate()
    if as_json:
        line(json.dumps(jsonable(rotation), sort_keys=True))
    else:
        line(f"rotated: {rotation.data_keys} data keys re-wrapped under {rotation.new_kek_id} "
             f"(was {rotation.old_kek_id}); no data was rewritten")


@app.command("encrypt-home")
def keys_encrypt_home(yes: Annotated[bool, typer.Option(
        "--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Encrypt a home made before encryption existed, in place: objects, the metadata
    database and the prediction log. Crash-safe: run it again to finish. Stop the daemon first."""
    from rich.progress import Progress, TaskID

    from mlops_lite.privacy.migrate import encrypt_home

    settings = load_settings()
    if not yes:
        typer.confirm(f"Encrypt {settings.home} in place? Back up the home first; keep the key file "
                      f"({settings.master_key_file}) apart from it afterwards", abort=True)
    with Progress(transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"encrypting {what}", total=total)
            bar.update(tasks[what], completed=done)

        report = encrypt_home(settings, progress=progress)
    line(f"encrypted {settings.home}: {report.objects_encrypted} objects"
         + (f" ({report.objects_already} were already)" if report.objects_already else "")
         + f", metadata {report.metadata}, {report.log_files} prediction log files"
         + (" (finished an interrupted run)" if report.resumed else ""))
    if report.objects_unsound:
        line(f"left as they were, their content not matching their name: {', '.join(report.objects_unsound[:10])}"
             + (" ..." if len(report.objects_unsound) > 10 else ""))
    line(f"key encryption key: {settings.master_key_file if settings.kms == 'keyfile' else settings.kms}: "
         "back it up apart from the home")
