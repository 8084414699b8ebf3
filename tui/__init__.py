"""The Textual operator console: run the platform from a terminal (or a browser tab),
local or remote. ``OperatorConsole`` is the app; ``run_console`` runs it here."""

from tui.console import OperatorConsole, run_console

__all__ = ["OperatorConsole", "run_console"]
