"""Policy: the gates a model version passes before it serves traffic, the stored
decisions, and the approval workflow. Policies are TOML files (see document.py)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_lite.policy.approvals import Approvals
    from mlops_lite.policy.document import PolicySpec, load_policy
    from mlops_lite.policy.gates import Policy
    from mlops_lite.policy.notify import LogSink, WebhookSink

# Loaded on first use (PEP 562): the HTTP client reads PolicySpec from document.py
# without the store's libraries (tests/unit/test_cli_startup.py).
_WHERE = {"Approvals": "approvals", "PolicySpec": "document", "load_policy": "document", "Policy": "gates",
          "LogSink": "notify", "WebhookSink": "notify"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mlops_lite.policy.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mlops_lite.policy' has no attribute {name!r}")


__all__ = ["Approvals", "LogSink", "Policy", "PolicySpec", "WebhookSink", "load_policy"]
