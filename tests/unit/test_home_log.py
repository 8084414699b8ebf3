"""Records while a command draws progress go to the home's log file, then everything is
put back as it was."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlops_lite.home_log import records_to_home_log


def test_records_go_to_the_home_log_not_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    console = logging.StreamHandler()  # what Prefect's setup puts on the root logger
    root.addHandler(console)
    quiet = logging.getLogger("tests.quiet")
    own = logging.StreamHandler()
    quiet.addHandler(own)
    quiet.propagate = False
    try:
        with records_to_home_log(tmp_path) as logged:
            logging.getLogger("mlops_lite.alerts").warning("alert.fire drift on %s", "loans")
            quiet.error("a handler of its own, not propagating")
            logging.getLogger("mlops_lite").info("below the root's level: dropped")
        assert capsys.readouterr().err == ""
        text = (tmp_path / "logs" / "mlops-lite.log").read_text()
        assert "WARNING mlops_lite.alerts" in text and "alert.fire drift on loans" in text
        assert "ERROR tests.quiet" in text and "dropped" not in text
        assert ((tmp_path / "logs" / "mlops-lite.log").stat().st_mode & 0o777) == 0o600
        assert (logged.warnings, logged.errors) == (1, 1)
        assert logged.summary().startswith(f"log: 1 error, 1 warning in {tmp_path / 'logs' / 'mlops-lite.log'}")
        # put back as they were
        assert console in root.handlers and own in quiet.handlers
        assert not [h for h in root.handlers + quiet.handlers
                    if getattr(h, "baseFilename", "").startswith(str(tmp_path)) or type(h).__name__ == "LogTally"]
        logging.getLogger("mlops_lite.alerts").warning("after the block")
        assert "after the block" in capsys.readouterr().err
    finally:
        root.removeHandler(console)
        quiet.removeHandler(own)


def test_nothing_to_say_is_no_line(tmp_path: Path) -> None:
    with records_to_home_log(tmp_path) as logged:
        pass
    assert logged.summary() == ""
