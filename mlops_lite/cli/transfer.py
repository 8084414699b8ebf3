"""Moving bytes for ``data put`` and ``data get``: files and folders staged with a progress
bar, and what is read written whole or not at all."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from mlops_lite.cli.common import err
from mlops_lite.errors import InvalidInput

PROGRESS_BYTES = 8 << 20
"""Files bigger than this show a progress bar while they stream."""
CHUNK = 1 << 20


def bytes_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


class ProgressReader:
    """A binary stream that advances a progress bar as it is read."""

    def __init__(self, stream: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._stream, self._progress, self._task = stream, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


# ------------------------------------------------------------------------------ put

def put_folder(branch: Any, folder: Path, prefix: str) -> int:
    """Stage every file under ``folder`` as ``prefix/<relative path>``, with progress; the count staged."""
    files = [Path(root) / n for root, _, names in os.walk(folder) for n in names]
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            pass
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False) as progress:
        count_task = progress.add_task("files", total=len(files))
        bytes_task = progress.add_task("MiB", total=max(1, total >> 20))

        def advance(files_done: int, bytes_done: int) -> None:
            progress.update(count_task, completed=files_done)
            progress.update(bytes_task, completed=bytes_done >> 20)

        count = int(branch.import_directory(folder, prefix=prefix, workers=min(8, os.cpu_count() or 2),
                                            progress=advance))
        progress.update(count_task, completed=len(files))
        progress.update(bytes_task, completed=max(1, total >> 20))
    return count


def put_file(branch: Any, source: Path, dest: str) -> Any:
    """Stage one file (or stdin for ``-``) at ``dest``, streamed; its object record."""
    if source == Path("-"):
        return branch.upload(dest, cast(BinaryIO, sys.stdin.buffer))
    try:
        stream = open(source, "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}", field="path",
                           expected="a readable file or folder") from exc
    with stream:
        size = os.fstat(stream.fileno()).st_size
        if size <= PROGRESS_BYTES:
            return branch.upload(dest, cast(BinaryIO, stream))
        with bytes_progress() as progress:
            task = progress.add_task(dest, total=size)
            return branch.upload(dest, cast(BinaryIO, ProgressReader(stream, progress, task)))


# ------------------------------------------------------------------------------ get

def parse_range(spec: str) -> tuple[int, int | None]:
    first, sep, last = spec.partition("-")
    try:
        if not sep or not first:
            raise ValueError(spec)
        return int(first), (int(last) if last else None)
    except ValueError:
        raise InvalidInput(f"bad --range {spec!r}", field="range",
                           expected="START-END or START- (bytes, END inclusive)") from None


def write_out(output: Path | None, chunks: Any, size: int | None) -> None:
    """Write chunks to ``output`` (whole or not at all: via a temporary file) or stdout;
    a progress bar on stderr when ``size`` is given."""
    target: Path | None = None
    try:
        if output is None:
            sink: IO[bytes] = sys.stdout.buffer
        else:
            target = output.with_name(f".{output.name}.part")
            sink = open(target, "wb")
        progress = bytes_progress() if size is not None else None
        try:
            task = progress.add_task(output.name if output else "stdout", total=size) if progress else None
            if progress:
                progress.start()
            for chunk in chunks:
                sink.write(chunk)
                if progress and task is not None:
                    progress.advance(task, len(chunk))
            sink.flush()
        finally:
            if progress:
                progress.stop()
            if output is not None:
                sink.close()
        if target is not None and output is not None:
            os.replace(target, output)
            target = None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        raise InvalidInput(f"cannot write {output or 'stdout'}: {exc.strerror}", field="output",
                           expected="a writable file") from exc
    finally:
        if target is not None:
            target.unlink(missing_ok=True)
