"""Train a scikit-learn classifier on a table, convert it to ONNX, prove parity.

The ONNX graph holds the whole pipeline (scaling and one-hot encoding included),
with one input per feature, so serving applies exactly the training transforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_lite.errors import IntegrityError, InvalidInput

ALGORITHMS = ("logistic_regression", "random_forest", "hist_gradient_boosting")
# What a run records of its spec beside the estimator's own params (train_classifier);
# the target and the features by kind are in the version's signature.
SPEC_PARAMS = ("algorithm", "test_size", "seed", "sensitive")
OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class TrainingSpec:
    """What to learn: the target, the features by kind, and how."""

    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    sensitive: str | None = None
    algorithm: str = "logistic_regression"
    params: dict[str, Any] = field(default_factory=dict)
    test_size: float = 0.2
    seed: int = 42

    @classmethod
    def infer(cls, table: pa.Table, *, target: str, exclude: tuple[str, ...] = (),
              sensitive: str | None = None, **options: Any) -> TrainingSpec:
        """Numeric columns become numeric features, string columns categorical ones;
        ``exclude`` (PII, protected attributes) and the target are left out."""
        if target not in table.column_names:
            raise InvalidInput(f"target column {target!r} is not in the table", field="target",
                               expected=f"one of {table.column_names}")
        numeric, categorical = [], []
        for name, dtype in zip(table.column_names, table.schema.types, strict=True):
            if name == target or name in exclude:
                continue
            if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
                numeric.append(name)
            elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_boolean(dtype):
                categorical.append(name)
        return cls(target=target, numeric=tuple(numeric), categorical=tuple(categorical),
                   sensitive=sensitive, **options)

    @classmethod
    def recorded(cls, signature: dict[str, Any], params: dict[str, Any]) -> TrainingSpec:
        """The spec a model was trained with, read back from what its training recorded:
        the target and the features by kind from its signature, the algorithm, split, seed
        and sensitive attribute from its run's params, and the estimator's params (kept
        as text there) as the values they were. InvalidInput when the signature is not
        one ``train_classifier`` wrote."""
        if "target" not in signature or "inputs" not in signature:
            raise InvalidInput("the signature names no target or no inputs", field="signature",
                               expected="the signature train_classifier writes")
        inputs = signature["inputs"]
        given = dict(params)
        return cls(target=str(signature["target"]),
                   numeric=tuple(str(i["name"]) for i in inputs if i["type"] == "float"),
                   categorical=tuple(str(i["name"]) for i in inputs if i["type"] != "float"),
                   sensitive=str(given.pop("sensitive")) if given.get("sensitive") else None,
                   algorithm=str(given.pop("algorithm", "logistic_regression")),
                   test_size=float(given.pop("test_size", 0.2)), seed=int(given.pop("seed", 42)),
                   params={key: _param_value(value) for key, value in given.items()})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``from_dict`` reads it back), as a flow passes a spec to its tasks."""
        return {"target": self.target, "numeric": list(self.numeric), "categorical": list(self.categorical),
                "sensitive": self.sensitive, "algorithm": self.algorithm, "params": dict(self.params),
                "test_size": self.test_size, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        return cls(**{**data, "numeric": tuple(data["numeric"]), "categorical": tuple(data["categorical"]),
                      "params": dict(data.get("params") or {})})

    def validate(self, table: pa.Table) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidInput(f"unknown algorithm {self.algorithm!r}", field="algorithm",
                               expected=" | ".join(ALGORITHMS))
        if not 0.05 <= self.test_size <= 0.5:
            raise InvalidInput("test_size out of range", field="test_size", expected="between 0.05 and 0.5")
        if not self.numeric and not self.categorical:
            raise InvalidInput("no features to train on", field="features", expected="at least one feature")
        missing = [c for c in (self.target, *self.numeric, *self.categorical,
                               *([self.sensitive] if self.sensitive else [])) if c not in table.column_names]
        if missing:
            raise InvalidInput(f"columns not in the table: {missing}", field="columns",
                               expected=f"names among {table.column_names}")


def _param_value(text: Any) -> Any:
    """A param as logged (``str(value)``) back as the Python literal it was; text that is
    no literal (``balanced``) stays text."""
    import ast

    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass(frozen=True)
class TrainedModel:
    onnx: bytes
    signature: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, Any]
    parity_max_abs_diff: float


def _estimator(spec: TrainingSpec) -> tuple[Any, dict[str, Any], bool]:
    """The classifier, its effective params, and whether numeric inputs are scaled."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if spec.algorithm == "logistic_regression":
        params = {"C": 1.0, "max_iter": 1000, **spec.params}
        return LogisticRegression(**params), params, True
    if spec.algorithm == "random_forest":
        params = {"n_estimators": 100, "max_depth": 10, "random_state": spec.seed, "n_jobs": 1, **spec.params}
        # Trees compare float32 inputs in both sklearn and ONNX; scaling first would
        # be computed in float64 by sklearn and float32 by ONNX and could flip a split.
        return RandomForestClassifier(**params), params, False
    params = {"max_iter": 100, "random_state": spec.seed, **spec.params}
    return HistGradientBoostingClassifier(**params), params, False


def build_pipeline(spec: TrainingSpec) -> tuple[Any, Any, dict[str, Any]]:
    """The unfitted scikit-learn pipeline for ``spec``: (pipeline, its classifier, the classifier's params)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    estimator, params, scale = _estimator(spec)
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.numeric:
        transformers.append(("numeric", StandardScaler() if scale else "passthrough", list(spec.numeric)))
    if spec.categorical:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                             list(spec.categorical)))
    return Pipeline([("features", ColumnTransformer(transformers)), ("classifier", estimator)]), estimator, params


def training_frame(table: pa.Table, spec: TrainingSpec) -> Any:
    columns = {name: table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
               for name in spec.numeric}
    columns.update({name: np.asarray(table.column(name).cast(pa.string()).to_pylist(), dtype=object)
                    for name in spec.categorical})
    import pandas as pd

    return pd.DataFrame(columns, columns=[*spec.numeric, *spec.categorical])


def onnx_feed(frame: Any, spec: TrainingSpec) -> dict[str, np.ndarray]:
    feed = {name: frame[name].to_numpy(dtype=np.float32).reshape(-1, 1) for name in spec.numeric}
    feed.update({name: frame[name].to_numpy(dtype=object).reshape(-1, 1) for name in spec.categorical})
    return feed


def split_rows(target: np.ndarray, *, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The row numbers (fitted on, held out) of the stratified split ``train_classifier``
    makes. It depends on the target column, ``test_size`` and ``seed`` alone, so a gate
    reproduces a run's held-out rows from what the run recorded."""
    from sklearn.model_selection import train_test_split

    fitted, held_out = train_test_split(np.arange(len(target)), test_size=test_size, random_state=seed,
                                        stratify=target)
    return np.asarray(fitted), np.asarray(held_out)


def train_classifier(table: pa.Table, spec: TrainingSpec, *, parity_tolerance: float = 1e-4) -> TrainedModel:
    """Fit, evaluate on a held-out split, convert to ONNX, and check parity.

    Raises IntegrityError when ONNX and sklearn probabilities differ by more than
    ``parity_tolerance`` on the held-out rows.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
    from threadpoolctl import threadpool_limits

    spec.validate(table)
    if table.column(spec.target).null_count or pc.min(table.column(spec.target)).as_py() is None:
        raise InvalidInput("the target column has missing values", field=spec.target, expected="no nulls")
    frame = training_frame(table, spec)
    target = np.asarray(table.column(spec.target).to_pylist())
    classes = np.unique(target)
    if len(classes) != 2:
        raise InvalidInput(f"the target has {len(classes)} class(es); a binary classifier needs two classes",
                           field=spec.target, expected="two classes")
    groups = (np.asarray(table.column(spec.sensitive).cast(pa.string()).to_pylist(), dtype=object)
              if spec.sensitive else np.zeros(len(target), dtype=object))
    train_rows, test_rows = split_rows(target, test_size=spec.test_size, seed=spec.seed)
    x_train, x_test = frame.iloc[train_rows], frame.iloc[test_rows]
    y_train, y_test, g_test = target[train_rows], target[test_rows], groups[test_rows]

    pipeline, estimator, params = build_pipeline(spec)
    # A BLAS split across threads sums in an order that depends on the machine's
    # load, and the last bit of a coefficient then changes the model's digest;
    # one thread makes the same data and spec give the same bytes, every time.
    with threadpool_limits(limits=1):
        pipeline.fit(x_train, y_train)
        proba = pipeline.predict_proba(x_test)
    predicted = pipeline.classes_[np.argmax(proba, axis=1)]
    positive = pipeline.classes_[1]
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "roc_auc": float(roc_auc_score(y_test == positive, proba[:, 1])),
        "f1": float(f1_score(y_test == positive, predicted == positive)),
        "precision": float(precision_score(y_test == positive, predicted == positive, zero_division=0)),
        "recall": float(recall_score(y_test == positive, predicted == positive)),
        "train_rows": float(len(y_train)),
        "test_rows": float(len(y_test)),
    }
    if spec.sensitive:
        rates = [float(np.mean(predicted[g_test == g] == positive)) for g in np.unique(g_test)]
        metrics["demographic_parity_difference"] = max(rates) - min(rates)

    initial_types = [(name, FloatTensorType([None, 1])) for name in spec.numeric]
    initial_types += [(name, StringTensorType([None, 1])) for name in spec.categorical]
    onnx_model = convert_sklearn(pipeline, initial_types=initial_types, target_opset=OPSET,
                                 options={id(estimator): {"zipmap": False}})
    # skl2onnx names the graph with a random UUID; a fixed name makes the file, and
    # so its digest, a function of the fitted model alone.
    onnx_model.graph.name = f"mlops_lite_{spec.algorithm}"
    # skl2onnx lists the opsets it used in set order, which follows Python's per-process
    # string hashing: the same model then serialises to different bytes in one process
    # out of a dozen. Sorted, the bytes (and the digest) depend on the model alone.
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, version in opsets:
        onnx_model.opset_import.add(domain=domain, version=version)
    onnx_bytes = onnx_model.SerializeToString()

    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_proba = session.run(["probabilities"], onnx_feed(x_test, spec))[0]
    diff = float(np.max(np.abs(onnx_proba - proba)))
    if not diff <= parity_tolerance:
        raise IntegrityError(
            f"ONNX parity check failed: probabilities differ by {diff:.3g} > {parity_tolerance:g}",
            details={"max_abs_diff": diff, "tolerance": parity_tolerance})
    metrics["parity_max_abs_diff"] = diff

    signature = {
        "inputs": [{"name": n, "type": "float"} for n in spec.numeric]
        + [{"name": n, "type": "string"} for n in spec.categorical],
        "outputs": [{"name": "label", "type": "int64"},
                    {"name": "probabilities", "type": "float32", "shape": [None, len(classes)]}],
        "classes": [c.item() if hasattr(c, "item") else c for c in pipeline.classes_],
        "target": spec.target,
    }
    recipe = {"algorithm": spec.algorithm, "test_size": spec.test_size, "seed": spec.seed,
              **({"sensitive": spec.sensitive} if spec.sensitive else {})}
    all_params = {**recipe, **params}
    return TrainedModel(onnx=onnx_bytes, signature=signature, metrics=metrics, params=all_params,
                        parity_max_abs_diff=diff)
