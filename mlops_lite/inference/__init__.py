"""Inference: ONNX runtime sessions, provider choice and deployments."""

from mlops_lite.inference.deployments import Deployments
from mlops_lite.inference.session import ModelSession, choose_providers

__all__ = ["Deployments", "ModelSession", "choose_providers"]
