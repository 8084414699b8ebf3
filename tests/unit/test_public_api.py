import mlops_lite
from mlops_lite import errors


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(mlops_lite) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(mlops_lite, name)).__name__ == "module"}
    assert sorted(mlops_lite.__all__) == mlops_lite.__all__
    assert set(mlops_lite.__all__) == public - modules


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
