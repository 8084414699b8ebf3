"""Columnar requests: whole feature columns in, numpy tensors out, no per-row Python.

Two encodings reach a model this way:

- an Arrow IPC stream (``application/vnd.apache.arrow.stream``), one column per model
  input, for the native predict API (``feed_from_arrow``; ``arrow_answer`` writes the
  answer back as Arrow when asked);
- raw little-endian tensor bytes of the Open Inference Protocol's binary tensor data
  extension (``numeric_column``, ``bytes_column``).

Either way a numeric feature becomes a ``float32 [n, 1]`` array by ``np.frombuffer`` /
Arrow's own conversion plus one ``astype``, checked finite as a whole column, and the
prediction log takes the columns as they are (``Monitoring.record_columns``): the
values as sent for Arrow, the tensors for OIP. ``ColumnRows`` is a row view over
columns, for what needs rows (a shadow version's hook).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from mlops_lite.errors import InvalidInput
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import Prediction

ARROW_STREAM = "application/vnd.apache.arrow.stream"

# OIP datatype -> little-endian numpy dtype of its binary form (numbers only).
BINARY_DTYPES: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
}


class ColumnRows(Sequence[dict[str, Any]]):
    """The rows of a columnar request as ``{feature: value}`` dicts, made on first read.

    The prediction log keeps rows, so something must build them; building them here,
    lazily, moves that work from the request to the log's writer thread."""

    def __init__(self, columns: Mapping[str, np.ndarray], rows: int) -> None:
        self._columns = dict(columns)
        self._n = rows
        self._rows: list[dict[str, Any]] | None = None

    @property
    def columns(self) -> dict[str, np.ndarray]:
        return self._columns

    def _materialize(self) -> list[dict[str, Any]]:
        if self._rows is None:
            names = list(self._columns)
            values = [column.reshape(-1).tolist() for column in self._columns.values()]
            self._rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        return self._rows

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._materialize()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._materialize())


# ------------------------------------------------------------------------------------- numbers

def finite_float32(values: np.ndarray, name: str, field: str) -> np.ndarray:
    """``values`` as a ``float32 [n, 1]`` column, refused when any value is not finite as FP32."""
    with np.errstate(over="ignore", invalid="ignore"):
        column = values.reshape(-1, 1).astype(np.float32, copy=False)
    if not np.isfinite(column).all():
        bad = int(np.flatnonzero(~np.isfinite(column.reshape(-1)))[0])
        raise InvalidInput(f"input {name!r} has a value that is not finite as FP32 (NaN, infinity or out of "
                           f"range) at row {bad}", field=field, expected="finite numbers within FP32")
    return column


def numeric_column(data: memoryview | bytes, datatype: str, rows: int, name: str, field: str) -> np.ndarray:
    """A numeric feature from its raw little-endian tensor bytes (OIP binary data)."""
    dtype = BINARY_DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"input {name!r} has datatype {datatype}; it is a numeric feature", field=field,
                           expected="one of " + ", ".join(sorted(BINARY_DTYPES)))
    if len(data) != rows * dtype.itemsize:
        raise InvalidInput(f"input {name!r} has {len(data)} bytes of binary data, but {rows} {datatype} values "
                           f"take {rows * dtype.itemsize} ({dtype.itemsize} bytes each)", field=field,
                           expected=f"{rows * dtype.itemsize} bytes")
    return finite_float32(np.frombuffer(data, dtype=dtype, count=rows), name, field)


def bytes_column(data: memoryview | bytes, rows: int, name: str, field: str) -> np.ndarray:
    """A string feature from OIP BYTES binary data: per element a 4-byte little-endian
    length, then that many UTF-8 bytes. Each element's offset depends on the lengths
    before it, so this is the one walk over elements; numeric features have none."""
    view = memoryview(data).cast("B")
    size, offset = len(view), 0
    values: list[str] = []
    append = values.append
    for index in range(rows):
        if offset + 4 > size:
            raise InvalidInput(f"input {name!r} BYTES data ends after {index} of {rows} elements", field=field,
                               expected=f"{rows} elements, each a 4-byte little-endian length and its bytes")
        length = int.from_bytes(view[offset:offset + 4], "little")
        offset += 4
        if offset + length > size:
            raise InvalidInput(f"input {name!r} BYTES element {index} says {length} bytes but only "
                               f"{size - offset} are left", field=field,
                               expected="each element's length prefix within its binary_data_size")
        try:
            append(str(view[offset:offset + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input {name!r} BYTES element {index} is not UTF-8 text", field=field,
                               expected="UTF-8 strings") from exc
        offset += length
    if offset != size:
        raise InvalidInput(f"input {name!r} has {size - offset} bytes of BYTES data after its {rows} elements",
                           field=field, expected=f"exactly {rows} elements in binary_data_size bytes")
    return np.asarray(values, dtype=object).reshape(-1, 1)


def serialize_bytes(values: Sequence[Any]) -> bytes:
    """OIP BYTES binary form of ``values`` (each as UTF-8 text)."""
    parts: list[bytes] = []
    for value in values:
        encoded = str(value).encode()
        parts.append(len(encoded).to_bytes(4, "little"))
        parts.append(encoded)
    return b"".join(parts)


# ------------------------------------------------------------------------------------- Arrow

def feed_from_arrow(session: ModelSession, data: bytes, sent: dict[str, np.ndarray] | None = None
                    ) -> tuple[dict[str, np.ndarray], int]:
    """Validate an Arrow IPC stream against the session's signature; answer the feed and rows.

    ``sent``, when given, receives each input's values as the client sent them (float64 or
    integers, before the model's float32), for the prediction log: a row logged from an
    Arrow body then reads as the same row sent as JSON."""
    import pyarrow as pa
    import pyarrow.types as pat

    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InvalidInput(f"the request body is not an Arrow IPC stream ({exc})", field="body",
                           expected=f"an Arrow IPC stream ({ARROW_STREAM}), one column per model input") from exc
    names = [spec["name"] for spec in session.inputs]
    present = table.column_names
    if len(set(present)) != len(present):
        twice = next(n for n in present if present.count(n) > 1)
        raise InvalidInput(f"column {twice!r} is given twice", field=twice, expected="each column once")
    unknown = [n for n in present if n not in names]
    if unknown:
        raise InvalidInput(f"unknown column {unknown[0]!r}", field=unknown[0],
                           expected=f"only the model's inputs: {sorted(names)}")
    missing = [n for n in names if n not in present]
    if missing:
        raise InvalidInput(f"missing column {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                                 if len(missing) > 1 else ""),
                           field=missing[0], expected=f"one column per model input: {sorted(names)}")
    rows = table.num_rows
    if rows < 1:
        raise InvalidInput("the Arrow stream has no rows", field="body", expected="at least one row")
    if rows > session.max_batch_size:
        raise InvalidInput(f"{rows} rows is more than the limit", field="body",
                           expected=f"at most {session.max_batch_size} rows")
    feed: dict[str, np.ndarray] = {}
    for spec in session.inputs:
        name = spec["name"]
        column = table.column(name)
        kind = column.type
        if pat.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = column.type
        if column.null_count:
            raise InvalidInput(f"column {name!r} has {column.null_count} null values", field=name,
                               expected="a value in every row")
        if spec["type"] == "float":
            if not (pat.is_integer(kind) or pat.is_floating(kind)):
                raise InvalidInput(f"column {name!r} is {kind}; it is a numeric feature", field=name,
                                   expected="an integer or floating-point column")
            values = column.to_numpy()
            feed[name] = finite_float32(values, name, name)
            if sent is not None:
                sent[name] = values
        else:
            if not (pat.is_string(kind) or pat.is_large_string(kind)):
                raise InvalidInput(f"column {name!r} is {kind}; it is a string feature", field=name,
                                   expected="a string (utf8) column")
            feed[name] = column.to_numpy().astype(object, copy=False).reshape(-1, 1)
            if sent is not None:
                sent[name] = feed[name]
    return feed, rows


def arrow_answer(prediction: Prediction, labels: np.ndarray, probabilities: np.ndarray) -> bytes:
    """The answer as an Arrow IPC stream: ``predictions`` and ``probabilities`` (one list of
    class probabilities per row), the rest of the record in the schema's metadata."""
    import pyarrow as pa

    probs = np.ascontiguousarray(probabilities, dtype=np.float64)
    classes = probs.shape[1] if probs.ndim == 2 else 0
    flat = labels.reshape(-1)
    label_array = pa.array(flat if flat.dtype.kind in "iub" else flat.astype(str))
    table = pa.table({"predictions": label_array,
                      "probabilities": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), classes)})
    meta = {"request_id": prediction.request_id, "deployment": prediction.deployment, "model": prediction.model,
            "version": prediction.version, "digest": prediction.digest, "slot": prediction.slot,
            "classes": json.dumps(list(prediction.classes))}
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())
