"""Policy: the gates a model version passes before it serves traffic."""

from mlops_lite.policy.gates import Policy

__all__ = ["Policy"]
