"""Alerts: rules over monitoring figures, a state machine per (rule, subject), silences,
and sinks. ``platform.alerts`` is an ``Alerts`` (locally) or its HTTP client (remotely);
both answer ``mlops_lite.api.AlertsAPI``.

- ``rules.py``: ``AlertRule`` (``metric op threshold`` held ``for_s``), ``Observation``,
  the TOML rules file (``load_rules``/``parse_rules``) and ``default_rules``.
- ``machine.py``: pending -> firing -> resolved, one open alert per (rule, subject).
- ``silences.py``: silences hold notifications back, never state.
- ``sinks.py``: the one sink interface (alerts and approvals' notifications), the log
  and callback sinks; ``webhook.py``: the webhook client and its queued sink.
- ``notices.py``: notifications out to the sinks, their delivery written on the alert.
- ``facet.py``: ``Alerts``, the facet over all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_lite.alerts.facet import Alerts
    from mlops_lite.alerts.machine import AlertRecord, Transition
    from mlops_lite.alerts.rules import AlertRule, Observation, default_rules, load_rules, parse_rules
    from mlops_lite.alerts.silences import SilenceRecord
    from mlops_lite.alerts.sinks import CallbackSink, Delivery, LogSink, Sink
    from mlops_lite.alerts.webhook import Webhook, WebhookSink

# Loaded on first use (PEP 562): the HTTP client takes the rules and records from here
# without the store's libraries (tests/unit/test_cli_startup.py).
_WHERE = {
    "Alerts": "facet", "AlertRecord": "machine", "Transition": "machine", "AlertRule": "rules",
    "Observation": "rules", "default_rules": "rules", "load_rules": "rules", "parse_rules": "rules",
    "SilenceRecord": "silences", "CallbackSink": "sinks", "Delivery": "sinks", "LogSink": "sinks",
    "Sink": "sinks", "Webhook": "webhook", "WebhookSink": "webhook",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mlops_lite.alerts.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mlops_lite.alerts' has no attribute {name!r}")


__all__ = [
    "AlertRecord",
    "AlertRule",
    "Alerts",
    "CallbackSink",
    "Delivery",
    "LogSink",
    "Observation",
    "SilenceRecord",
    "Sink",
    "Transition",
    "Webhook",
    "WebhookSink",
    "default_rules",
    "load_rules",
    "parse_rules",
]
