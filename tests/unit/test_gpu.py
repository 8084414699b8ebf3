"""The CUDA execution provider, where onnxruntime-gpu and an NVIDIA GPU are present."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mlops_lite import MissingDependency
from mlops_lite.inference import choose_providers

from ..conftest import holdout_rows

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_provider_choice_follows_what_onnxruntime_offers() -> None:
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    assert (choose_providers("auto")[0] == "CUDAExecutionProvider") == HAS_CUDA
    if not HAS_CUDA:
        with pytest.raises(MissingDependency, match="--gpu"):
            choose_providers("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with CUDAExecutionProvider and an NVIDIA GPU")
def test_cuda_session_matches_cpu(loop) -> None:
    from mlops_lite.inference import ModelSession

    platform, _, spec = loop
    version = platform.registry.get_version("loan-default", "1.0.0")
    onnx = platform.registry.model_bytes("loan-default", "1.0.0")
    gpu = ModelSession(onnx, version.signature, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    cpu = ModelSession(onnx, version.signature, providers=["CPUExecutionProvider"])
    assert gpu.provider == "CUDAExecutionProvider"
    feed = cpu.build_feed(holdout_rows(spec, 200))
    assert np.allclose(gpu.predict(feed)[1], cpu.predict(feed)[1], atol=1e-5)
