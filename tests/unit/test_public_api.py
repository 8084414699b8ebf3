from collections.abc import Iterable

import pytest

import mlops_lite
from mlops_lite import config, connection, errors, platform, records


def _public_names(names: Iterable[str]) -> set[str]:
    public = {name for name in names if not name.startswith("_")}
    return {name for name in public if type(getattr(mlops_lite, name)).__name__ != "module"}


def test_all_lists_exactly_the_public_names() -> None:
    # The names load on first use (module __getattr__), so dir() is what a user sees;
    # once resolved, the module's namespace holds the same names.
    assert sorted(mlops_lite.__all__) == mlops_lite.__all__
    assert set(mlops_lite.__all__) == _public_names(dir(mlops_lite))
    assert set(mlops_lite.__all__) == _public_names(vars(mlops_lite))


def test_public_names_resolve_to_their_modules_and_nothing_else_does() -> None:
    assert mlops_lite.connect is connection.connect and mlops_lite.NotFound is errors.NotFound
    assert mlops_lite.Platform is platform.Platform
    assert mlops_lite.Settings is config.Settings and mlops_lite.RunRecord is records.RunRecord
    namespace: dict[str, object] = {}
    exec("from mlops_lite import *", namespace)
    assert {name for name in namespace if not name.startswith("_")} == set(mlops_lite.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = mlops_lite.no_such_name  # type: ignore[attr-defined]


def test_error_tree_maps_to_http_statuses_and_builtins() -> None:
    assert issubclass(errors.NotFound, LookupError) and errors.NotFound.http_status == 404
    assert issubclass(errors.InvalidInput, ValueError) and errors.InvalidInput.http_status == 422
    assert issubclass(errors.PermissionDenied, PermissionError) and errors.PermissionDenied.http_status == 403
    assert errors.Unauthenticated.http_status == 401
    assert errors.Conflict.http_status == 409
    assert errors.PolicyViolation.http_status == 412
    assert issubclass(errors.StoreLocked, errors.BackendUnavailable) and errors.StoreLocked.http_status == 503
    bad = errors.InvalidInput("x is wrong", field="x", expected="a number")
    assert bad.to_dict() == {"code": "invalid_input", "message": "x is wrong", "field": "x", "expected": "a number"}
