"""The Textual operator dashboard: a live view of a Platform, local or remote."""

from tui.app import Dashboard, run_dashboard

__all__ = ["Dashboard", "run_dashboard"]
