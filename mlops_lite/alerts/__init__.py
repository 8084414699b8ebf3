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

from mlops_lite.alerts.facet import Alerts
from mlops_lite.alerts.machine import AlertRecord, Transition
from mlops_lite.alerts.rules import AlertRule, Observation, default_rules, load_rules, parse_rules
from mlops_lite.alerts.silences import SilenceRecord
from mlops_lite.alerts.sinks import CallbackSink, Delivery, LogSink, Sink
from mlops_lite.alerts.webhook import Webhook, WebhookSink

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
