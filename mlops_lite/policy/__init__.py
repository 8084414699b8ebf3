"""Policy: the gates a model version passes before it serves traffic, the stored
decisions, and the approval workflow. Policies are TOML files (see document.py)."""

from mlops_lite.policy.approvals import Approvals
from mlops_lite.policy.document import PolicySpec, load_policy
from mlops_lite.policy.gates import Policy
from mlops_lite.policy.notify import LogSink, WebhookSink

__all__ = ["Approvals", "LogSink", "Policy", "PolicySpec", "WebhookSink", "load_policy"]
