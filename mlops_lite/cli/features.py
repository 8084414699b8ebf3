"""``mlops-lite features ...``: the feature store (docs/features.md) from the shell.

Definitions applied from a TOML or Python file, read back with their versions; the
online store materialized; features looked up by entity key; point-in-time training
sets; the skew check; entity-keyed predictions and the audited override of a
deployment's feature service version. Every command goes through ``platform.features``,
on the local home or through a running ``mlops-lite up``.

Exit status: 0 done; 1 a check failed (skew found) or the platform refused (a conflict);
2 bad input (a bad definition, an unknown service or view, a malformed ``-e``): the
message names the field, and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.text import Text

from mlops_lite.cli.common import (
    JsonOption,
    err,
    group,
    line,
    moment,
    platform,
    print_json,
    print_table,
    short,
    table,
)
from mlops_lite.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from mlops_lite.features.records import FeatureServiceRecord

app = group("The feature store: apply definitions, materialize, look up by entity, training sets, skew "
            "(through the daemon when `up` runs).")

BAD_INPUT = 2

RefOption = Annotated[str, typer.Option("--ref", help="The data ref the sources are read at.")]
EntityOption = Annotated[list[str] | None, typer.Option(
    "-e", "--entity", metavar="KEY=VALUE[,KEY=VALUE]",
    help="One entity row by its join keys, e.g. -e customer_id=42; repeat for more rows.")]
RequestOption = Annotated[list[str] | None, typer.Option(
    "-r", "--request", metavar="FIELD=VALUE",
    help="A request field given with every entity row, e.g. -r loan_amount=5000; repeatable.")]


def _fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _bad_input_exits_2() -> Iterator[None]:
    """Bad input (a field named) and unknown names end the command with exit 2; other
    errors of the tree reach ``main``, which prints them and exits 1."""
    try:
        yield
    except (InvalidInput, NotFound) as exc:
        message = str(exc.message)
        if isinstance(exc, InvalidInput):
            said = [f"field {exc.field}"] if exc.field and exc.field not in message else []
            if exc.expected and exc.expected not in message:
                said.append(f"expected {exc.expected}")
            if said:
                message += f" ({'; '.join(said)})"
        _fail(message)


# ------------------------------------------------------------------------------ parsing -e / -r

def _typed(value: str, dtype: str | None, field: str) -> Any:
    """A command-line value as its declared type (as JSON would carry it)."""
    if dtype is None:
        return _guess(value)
    try:
        if dtype == "int64":
            if not value.strip().lstrip("+-").isdigit():
                raise ValueError(value)
            return int(value)
        if dtype == "float64":
            return float(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} is {value!r}", field=field,
                           expected="an integer" if dtype == "int64" else "a number") from exc
    if dtype == "bool":
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"{field} is {value!r}", field=field, expected="true | false")
        return value.lower() in ("true", "1")
    return value


def _guess(value: str) -> Any:
    """A value of no declared type (a model input besides the features): a number when it reads as one."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def _pairs(text: str, option: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"bad {option} {text!r}", field=option,
                               expected="KEY=VALUE[,KEY=VALUE], e.g. customer_id=42")
        out.append((key.strip(), value.strip()))
    return out


def entity_rows(entities: list[str] | None, requests: list[str] | None, join_keys: Mapping[str, str],
                request_fields: Mapping[str, str], extra: Mapping[str, str | None] | None = None
                ) -> list[dict[str, Any]]:
    """The entity rows ``-e`` and ``-r`` give, each value parsed by its declared type: a join
    key (``-e``) or a request field (``-r``) of the service, or (``extra``) another input."""
    if not entities:
        raise InvalidInput("no entity rows", field="-e", expected=f"-e {next(iter(join_keys), 'key')}=VALUE")
    other = dict(extra or {})
    fields: dict[str, Any] = {}
    for text in requests or ():
        for key, value in _pairs(text, "-r"):
            if key not in request_fields and key not in other:
                raise InvalidInput(f"{key!r} is not a request field", field=f"-r {key}",
                                   expected=f"one of {sorted([*request_fields, *other])}" if request_fields or other
                                   else "no -r: the service reads no request fields")
            if key in fields:
                raise InvalidInput(f"-r {key} is given twice", field=f"-r {key}", expected="each field once")
            fields[key] = _typed(value, request_fields.get(key) or other.get(key), f"-r {key}")
    rows = []
    for text in entities:
        row: dict[str, Any] = {}
        for key, value in _pairs(text, "-e"):
            if key not in join_keys:
                raise InvalidInput(f"{key!r} is not a join key", field=f"-e {key}",
                                   expected=f"one of {sorted(join_keys)}")
            if key in row:
                raise InvalidInput(f"-e {text!r} names {key} twice", field=f"-e {key}",
                                   expected="one -e per entity row")
            row[key] = _typed(value, join_keys[key], f"-e {key}")
        rows.append({**row, **fields})
    return rows


# ------------------------------------------------------------------------------ definitions

@app.command("apply")
def features_apply(path: Annotated[Path, typer.Argument(help="The definitions: a .toml or .py file.")],
                   ref: RefOption = "main",
                   dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")]
                   = False,
                   as_json: JsonOption = False) -> None:
    """Validate the definitions against their sources at --ref and make them the current set
    (a changed definition is a new version; one left out is retired)."""
    with _bad_input_exits_2(), platform() as p:
        result = p.features.apply(path.expanduser(), ref=ref, dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    out = table("kind", "name", "action", "digest")
    for change in result.changes:
        out.add_row(change.kind, change.name, change.action + (" (dry run)" if dry_run and
                                                               change.action != "unchanged" else ""),
                    change.digest[:12])
    print_table(out)
    for service, version in sorted(result.services.items()):
        line(f"feature service {service}: version {version}")
    if result.commits:
        line("sources read at " + ", ".join(f"{repo}@{short(commit)}" for repo, commit in sorted(result.commits.items()))
             + f" ({ref})")
    if dry_run:
        line("dry run: nothing changed")


@app.command("list")
def features_list(kind: Annotated[str | None, typer.Option(
                      help="Only this kind: entity | feature_view | on_demand | feature_service.")] = None,
                  as_json: JsonOption = False) -> None:
    """The current definitions."""
    with _bad_input_exits_2(), platform() as p:
        records = p.features.list(kind)
    if as_json:
        print_json(records)
        return
    if not records:
        line("no feature definitions" + (f" of kind {kind}" if kind else "") + " (mlops-lite features apply FILE)")
        return
    out = table("kind", "name", "version", "applied", "by")
    for r in records:
        out.add_row(r.kind, r.name, r.version, f"{r.applied_at:%Y-%m-%d %H:%M:%S}", r.applied_by)
    print_table(out)


@app.command("history")
def features_history(kind: Annotated[str, typer.Argument(help="entity | feature_view | on_demand | feature_service")],
                     name: Annotated[str, typer.Argument(help="The definition's name.")],
                     as_json: JsonOption = False) -> None:
    """Every version of one definition, newest first."""
    with _bad_input_exits_2(), platform() as p:
        records = p.features.history(kind, name)
    if as_json:
        print_json(records)
        return
    out = table("version", "digest", "applied", "by", "current")
    for r in records:
        out.add_row(r.version, r.digest[:12], f"{r.applied_at:%Y-%m-%d %H:%M:%S}", r.applied_by,
                    "yes" if r.current else "")
    print_table(out)


def _ttl(seconds: float) -> str:
    if not seconds:
        return "never expires"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@app.command("show")
def features_show(service: Annotated[str, typer.Argument(help="The feature service.")],
                  version: Annotated[str | None, typer.Option(help="A version it had (default: the current).")]
                  = None,
                  as_json: JsonOption = False) -> None:
    """A feature service: its features with their types, join keys, request fields and views."""
    with _bad_input_exits_2(), platform() as p:
        record = p.features.service(service, version)
    if as_json:
        print_json(record)
        return
    line(f"feature service {record.name} version {record.version}"
         + ("" if record.current else " (not current)") + f", applied {record.applied_at:%Y-%m-%d %H:%M:%S}")
    line("join keys: " + ", ".join(f"{k} ({t})" for k, t in record.join_keys.items()))
    if record.request_fields:
        line("request fields: " + ", ".join(f"{k} ({t})" for k, t in record.request_fields.items()))
    owner = {f: view for view, spec in record.views.items() for f in spec.get("features", [])}
    out = table("feature", "type", "view")
    for name in record.features:
        out.add_row(name, record.dtypes.get(name, ""), owner.get(name, "on demand"))
    print_table(out)
    views = table("view", "repository", "entities", "ttl")
    for name, spec in record.views.items():
        views.add_row(name, str(spec.get("repository", "")), ", ".join(spec.get("entities", [])),
                      _ttl(float(spec.get("ttl_seconds", 0))))
    print_table(views)


@app.command("versions")
def features_versions(service: Annotated[str, typer.Argument(help="The feature service.")],
                      as_json: JsonOption = False) -> None:
    """A feature service's versions, newest first."""
    with _bad_input_exits_2(), platform() as p:
        versions = p.features.versions(service)
        if not versions:
            raise NotFound(f"no feature service {service!r} was ever applied")
        current = p.features.service(service).version if service in p.features.services() else None
    if as_json:
        print_json({"service": service, "current": current, "versions": versions})
        return
    for version in versions:
        line(version + ("  (current)" if version == current else ""))


# ------------------------------------------------------------------------------ online store

@app.command("materialize")
def features_materialize(views: Annotated[list[str] | None, typer.Argument(
                             help="The feature views (default: every current one).")] = None,
                         full: Annotated[bool, typer.Option(
                             "--full", help="Replace each view's rows (default: incremental, changed keys only).")]
                         = False,
                         ref: RefOption = "main",
                         as_of: Annotated[str | None, typer.Option(
                             "--as-of", help="The latest row per key up to this ISO time (default: now).")] = None,
                         as_json: JsonOption = False) -> None:
    """Write the latest row per key of each view at --ref into the online store."""
    records = []
    with _bad_input_exits_2(), platform() as p:
        when = moment(as_of, "as-of")
        known = [r.name for r in p.features.list("feature_view")]
        for name in views or ():
            if name not in known:
                raise NotFound(f"no feature view {name!r} (known: {', '.join(known) or 'none'})")
        names = list(views or known)
        if not names:
            line("no feature views to materialize (mlops-lite features apply FILE)")
            return
        for name in names:
            if not as_json:
                line(f"materializing {name} ({'full' if full else 'incremental'}) at {ref} ...")
            records += p.features.materialize([name], ref=ref, mode="full" if full else "incremental", as_of=when)
    if as_json:
        print_json(records)
        return
    out = table("view", "mode", "commit", "keys", "written", "deleted", "seconds")
    for r in records:
        out.add_row(r.view, r.mode, f"{r.repository}@{short(r.data_commit)}", str(r.keys), str(r.written),
                    str(r.deleted), f"{r.seconds:.3f}")
    print_table(out)


@app.command("get")
def features_get(service: Annotated[str, typer.Argument(help="The feature service.")],
                 entity: EntityOption = None,
                 request: RequestOption = None,
                 at: Annotated[str | None, typer.Option(help="Look up as of this ISO time (default: now).")] = None,
                 as_json: JsonOption = False) -> None:
    """The service's features for each entity row, from the online store, with a status per
    value: present, expired (older than its view's TTL) or missing."""
    with _bad_input_exits_2(), platform() as p:
        record = p.features.service(service)
        rows = entity_rows(entity, request, record.join_keys, record.request_fields)
        found = p.features.online(service, rows, at=moment(at, "at"))
    if as_json:
        print_json(found)
        return
    line(f"feature service {found.service} version {found.version} at {found.at.isoformat(timespec='seconds')}")
    out = table("entity", "feature", "value", "status")
    for row, values, statuses in zip(rows, found.rows, found.statuses, strict=True):
        who = ",".join(f"{k}={row[k]}" for k in record.join_keys)
        for name in found.features:
            value = values.get(name)
            out.add_row(who, name, "" if value is None else str(value), statuses.get(name, ""))
    print_table(out)
    for view, (repository, commit) in sorted(found.commits.items()):
        line(f"{view}: materialized from {repository}@{short(commit)}")


# ------------------------------------------------------------------------------ training sets

@app.command("training-set")
def features_training_set(service: Annotated[str, typer.Argument(help="The feature service.")],
                          repo: Annotated[str, typer.Option("--repo", help="The repository of the entity rows.")],
                          path: Annotated[str, typer.Option(
                              "--path", help="The entity rows' table (join keys, their time, labels).")],
                          ref: RefOption = "main",
                          timestamp_field: Annotated[str, typer.Option(
                              "--timestamp-field", help="The entity rows' time column.")] = "event_timestamp",
                          as_json: JsonOption = False) -> None:
    """A stored point-in-time training set of the entity rows at --path, pinned at the commits --ref names."""
    with _bad_input_exits_2(), platform() as p:
        record = p.features.training_set(service, repository=repo, path=path, ref=ref,
                                         timestamp_field=timestamp_field)
    if as_json:
        print_json(record)
        return
    line(f"training set {record.id}")
    line(f"feature service {record.service} version {record.service_version}")
    line("commits: " + ", ".join(f"{r}@{short(c)}" for r, c in sorted(record.commits.items())))
    line(f"rows: {record.rows}")
    line("columns: " + ", ".join(record.columns))


@app.command("training-sets")
def features_training_sets(service: Annotated[str | None, typer.Option(help="Only this service's.")] = None,
                           as_json: JsonOption = False) -> None:
    """The stored training sets, newest first."""
    with _bad_input_exits_2(), platform() as p:
        records = p.features.training_sets(service)
    if as_json:
        print_json(records)
        return
    if not records:
        line("no training sets" + (f" of {service}" if service else ""))
        return
    out = table("id", "service", "version", "rows", "commits", "created", "by")
    for r in records:
        out.add_row(r.id, r.service, r.service_version, str(r.rows),
                    ", ".join(f"{repo}@{short(c)}" for repo, c in sorted(r.commits.items())),
                    f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.created_by)
    print_table(out)


# ------------------------------------------------------------------------------ governance

@app.command("skew")
def features_skew(service: Annotated[str, typer.Argument(help="The feature service.")],
                  sample: Annotated[int, typer.Option(help="How many of the latest served vectors to recompute.")]
                  = 200,
                  as_json: JsonOption = False) -> None:
    """Recompute served feature vectors point-in-time and compare value by value. Exit 1 when
    any differs (the feature-skew alert fires), 0 when clean."""
    with _bad_input_exits_2(), platform() as p:
        report = p.features.check_skew(service, sample=sample)
        keys = p.features.service(service).join_keys
    if as_json:
        print_json(report)
    else:
        line(f"{report.service}: {report.checked} served vectors checked, {report.values_compared} values, "
             f"{report.mismatched} mismatched" + (f" (alert {report.alert})" if report.alert else ""))
        if report.rows:
            out = table("entity", "served at", "feature", "served", "status", "recomputed", "status")
            for row in report.rows:
                entity = row.get("entity", {})
                who = ",".join(f"{k}={v}" for k, v in entity.items() if k in keys or not keys)
                for name, diff in row.get("features", {}).items():
                    out.add_row(who, str(row.get("served_at", "")), name, str(diff.get("served")),
                                str(diff.get("status")), str(diff.get("offline")), str(diff.get("offline_status")))
            print_table(out)
    if report.mismatched:
        raise typer.Exit(1)


@app.command("allow")
def features_allow(deployment: Annotated[str, typer.Argument(help="The deployment.")],
                   reason: Annotated[str, typer.Option(help="Why serving it is safe (kept in the audit trail).")],
                   as_json: JsonOption = False) -> None:
    """Let a deployment serve its version although the version of the feature service it was
    trained with is no longer current (an admin's audited override)."""
    with _bad_input_exits_2(), platform() as p:
        record = p.features.allow(deployment, reason=reason)
    if as_json:
        print_json(record)
        return
    line(f"allowed {record.model}@{record.version} on {record.deployment} with feature service version "
         f"{record.service_version} (by {record.actor}: {record.reason})")


def _bound_service(p: Any, deployment: str) -> tuple[FeatureServiceRecord, dict[str, str | None]]:
    """The feature service the deployment's serving version was trained with, and the
    model's other inputs (request values sent with each row) with their types."""
    serving = p.deployments.get(deployment)
    signature = p.registry.get_version(serving.model, serving.version).signature or {}
    bound = signature.get("feature_service")
    if not bound:
        raise InvalidInput(f"deployment {deployment!r} serves {serving.model}@{serving.version}, trained without a "
                           "feature service", field="deployment",
                           expected="a deployment of a model trained through a feature service")
    record = p.features.service(bound["name"])
    kinds = {"int64": "int64", "float64": "float64", "float32": "float64", "double": "float64", "string": "string",
             "bool": "bool"}
    extra = {i["name"]: kinds.get(str(i.get("type") or i.get("dtype") or "")) for i in signature.get("inputs", [])
             if isinstance(i, Mapping) and i.get("name") not in record.dtypes}
    return record, extra


@app.command("predict")
def features_predict(deployment: Annotated[str, typer.Argument(help="The deployment.")],
                     entity: EntityOption = None,
                     request: RequestOption = None,
                     as_json: JsonOption = False) -> None:
    """Predict by entity key: the features of the service the serving version was trained
    with are looked up online; request fields come from -r."""
    with _bad_input_exits_2(), platform() as p:
        record, extra = _bound_service(p, deployment)
        rows = entity_rows(entity, request, record.join_keys, record.request_fields, extra)
        answer = p.features.predict(deployment, rows)
    if as_json:
        print_json(answer)
        return
    line(f"{answer.deployment}: {answer.model}@{answer.version} ({answer.slot}), request {answer.request_id}")
    out = table("entity", "label", *(f"p({c})" for c in answer.classes))
    for row, label, probabilities in zip(rows, answer.predictions, answer.probabilities or [()] * len(rows),
                                         strict=True):
        out.add_row(",".join(f"{k}={row[k]}" for k in record.join_keys), str(label),
                    *(f"{v:.4f}" for v in probabilities))
    print_table(out)
