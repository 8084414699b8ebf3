"""The home's log file, for commands that draw progress on the terminal.

A log record printed in the middle of a live progress display tears it apart (and
Prefect's logging setup prints every WARNING of any logger to stderr). While a command
shows progress, records go to ``<home>/logs/mlops-lite.log`` instead, and the command
ends with one summary line saying how many warnings and errors it wrote there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


class LogTally(logging.Handler):
    """Counts the records at WARNING and above that went to the log file."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.warnings = 0
        self.errors = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.first) < 3:
            self.first.append(f"{record.levelname.lower()} {record.name}: {record.getMessage().splitlines()[0][:120]}")

    def summary(self) -> str:
        """One line for the end of the command; '' when nothing needs a look."""
        if not self.warnings and not self.errors:
            return ""
        counts = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in
                           ((self.errors, "error"), (self.warnings, "warning")) if n)
        return f"log: {counts} in {self.path} (first: {self.first[0]})"


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler | LogTally)]


@contextmanager
def records_to_home_log(home: Path) -> Iterator[LogTally]:
    """While the block runs, log records of every logger go to the home's log file (0600)
    and not to the terminal; the tally counts warnings and errors. Handlers are put back
    as they were when the block ends."""
    path = home / "logs" / "mlops-lite.log"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(FORMAT))
    tally = LogTally(path)
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    removed: list[tuple[logging.Logger, logging.Handler]] = []
    attached: list[logging.Logger] = []
    for logger in loggers:
        console = _console_handlers(logger)
        for handler in console:
            logger.removeHandler(handler)
            removed.append((logger, handler))
        if logger is loggers[0] or (console and not logger.propagate):
            logger.addHandler(to_file)
            logger.addHandler(tally)
            attached.append(logger)
    try:
        yield tally
    finally:
        for logger in attached:
            logger.removeHandler(to_file)
            logger.removeHandler(tally)
        for logger, handler in removed:
            logger.addHandler(handler)
        to_file.close()
