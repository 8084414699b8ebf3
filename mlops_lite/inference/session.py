"""An onnxruntime session for one model version, with input validation.

Requests are checked against the version's signature and turned into numpy
tensors (one ``[n, 1]`` input per feature); no pandas on this path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from mlops_lite.errors import InvalidInput, MissingDependency

_NUMBERS = {int, float}
_STRINGS = {str}

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers(preference: str) -> list[str]:
    """CUDA first when asked for or when ``auto`` finds it; CPU always as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if preference == "cuda":
        if CUDA not in available:
            raise MissingDependency(
                "execution_provider='cuda' but onnxruntime has no CUDAExecutionProvider here; "
                "install the GPU extra (./install.sh --gpu) on a machine with an NVIDIA GPU")
        return [CUDA, CPU]
    if preference == "auto" and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


class ModelSession:
    def __init__(self, onnx: bytes, signature: dict[str, Any], *, providers: list[str],
                 intra_op_threads: int = 1, max_batch_size: int = 10_000) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(onnx, sess_options=options, providers=providers)
        self.signature = signature
        self.inputs: list[dict[str, Any]] = list(signature["inputs"])
        self._names = {spec["name"] for spec in self.inputs}
        names = [spec["name"] for spec in self.inputs]
        # a model of numbers only (the common case) validates a request as one [n, features] array
        self._numbers_getter = itemgetter(*names) if len(names) > 1 and all(
            spec["type"] == "float" for spec in self.inputs) else None
        self.classes: tuple[Any, ...] = tuple(signature.get("classes", ()))
        self.max_batch_size = max_batch_size

    @property
    def provider(self) -> str:
        return str(self._session.get_providers()[0])

    def build_feed(self, instances: Any) -> dict[str, np.ndarray]:
        """Validate ``instances`` (a list of {feature: value}) and build the tensors.

        The fast path checks whole columns at C speed (types by ``set(map(type, ...))``,
        finiteness with numpy); anything it does not accept goes through the row-by-row
        check, which names the first bad field."""
        if isinstance(instances, list) and 0 < len(instances) <= self.max_batch_size:
            feed = self._fast_feed(instances)
            if feed is not None:
                return feed
        return self._checked_feed(instances)

    def _fast_feed(self, instances: list[Any]) -> dict[str, np.ndarray] | None:
        if self._numbers_getter is not None:
            return self._numbers_feed(instances)
        try:
            if set(map(len, instances)) != {len(self.inputs)}:
                return None
            columns = {spec["name"]: [instance[spec["name"]] for instance in instances] for spec in self.inputs}
        except (KeyError, TypeError):
            return None
        feed: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            values = columns[spec["name"]]
            kinds = set(map(type, values))
            if spec["type"] == "float":
                if not kinds <= _NUMBERS:
                    return None
                array = np.asarray(values, dtype=np.float64)
                if not np.isfinite(array).all():
                    return None
                feed[spec["name"]] = array.astype(np.float32).reshape(-1, 1)
            else:
                if kinds != _STRINGS:
                    return None
                feed[spec["name"]] = np.asarray(values, dtype=object).reshape(-1, 1)
        return feed

    def _numbers_feed(self, instances: list[Any]) -> dict[str, np.ndarray] | None:
        """Every input a number: one array for the whole request and one finiteness check,
        instead of three numpy calls per feature (which is most of a one-row request)."""
        try:
            if set(map(len, instances)) != {len(self.inputs)}:
                return None
            rows = list(map(self._numbers_getter, instances))  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return None
        if not set(map(type, chain.from_iterable(rows))) <= _NUMBERS:
            return None
        array = np.array(rows, dtype=np.float64)
        if not np.isfinite(array).all():
            return None
        by_input = np.ascontiguousarray(array.T, dtype=np.float32)  # each input's column contiguous
        return {spec["name"]: by_input[i].reshape(-1, 1) for i, spec in enumerate(self.inputs)}

    def _checked_feed(self, instances: Any) -> dict[str, np.ndarray]:
        if not isinstance(instances, list):
            raise InvalidInput("instances must be a list of objects", field="instances",
                               expected="[{feature: value, ...}, ...]")
        if not instances:
            raise InvalidInput("instances is empty", field="instances", expected="at least one instance")
        if len(instances) > self.max_batch_size:
            raise InvalidInput(f"{len(instances)} instances is more than the limit",
                               field="instances", expected=f"at most {self.max_batch_size} instances")
        columns: dict[str, list[Any]] = {spec["name"]: [] for spec in self.inputs}
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise InvalidInput(f"instances[{index}] is not an object", field=f"instances[{index}]",
                                   expected="an object of feature: value")
            unknown = [key for key in instance if key not in self._names]
            if unknown:
                raise InvalidInput(f"unknown feature {unknown[0]!r}", field=f"instances[{index}].{unknown[0]}",
                                   expected=f"only the model's features: {sorted(self._names)}")
            for spec in self.inputs:
                name = spec["name"]
                if name not in instance:
                    raise InvalidInput(f"missing feature {name!r}", field=f"instances[{index}].{name}",
                                       expected=_expected(spec))
                columns[name].append(_check_value(instance[name], spec, f"instances[{index}].{name}"))
        return {spec["name"]: _tensor(columns[spec["name"]], spec) for spec in self.inputs}

    def predict(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self._session.run(["label", "probabilities"], feed)
        return labels, probabilities


def _expected(spec: dict[str, Any]) -> str:
    return "a finite number" if spec["type"] == "float" else "a string"


def _check_value(value: Any, spec: dict[str, Any], field: str) -> Any:
    if spec["type"] == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{field} is {type(value).__name__}", field=field, expected="a finite number")
        if not math.isfinite(value):
            raise InvalidInput(f"{field} is not finite", field=field, expected="a finite number")
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{field} is {type(value).__name__}", field=field, expected="a string")
    return value


def _tensor(values: Sequence[Any], spec: dict[str, Any]) -> np.ndarray:
    if spec["type"] == "float":
        return np.asarray(values, dtype=np.float32).reshape(-1, 1)
    return np.asarray(values, dtype=object).reshape(-1, 1)
