"""Feature definitions: entities, feature views, on-demand features and feature services.

Values inside the core (frozen dataclasses). Each has a canonical JSON ``spec()`` and a
``digest`` (sha256 of that JSON): the registry versions a definition by its digest, so
applying the same text twice changes nothing, and a feature service's *version* is the
digest of its own spec together with the specs of every view and entity it reads.

Semantics (the same offline and online, docs/features.md):
- A feature view's value for an entity at time ``t`` is the row with the latest event
  time ``<= t`` (ties broken by the latest created time); it is ``present`` when
  ``t - event_time <= ttl``, ``expired`` when older, ``missing`` when there is no row.
  A TTL of zero never expires.
- On-demand features are DuckDB SQL expressions over request fields and the service's
  other features, evaluated by DuckDB in training sets and online alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_lite.clock import parse_duration
from mlops_lite.errors import InvalidInput

DTYPES = ("int64", "float64", "string", "bool", "timestamp")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
KINDS = ("entity", "feature_view", "on_demand", "feature_service")
# The static segments of /v1/features/...: a service named so could not be looked up at
# POST /v1/features/{service} (the static route wins).
RESERVED_SERVICE_NAMES = ("apply", "materialize", "materializations", "services", "training-sets")


def check_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(f"bad name {value!r}", field=field_name,
                           expected="a name of letters, digits and _ (not starting with a digit), at most 63")
    return value


def check_dtype(value: Any, field_name: str) -> str:
    if value not in DTYPES:
        raise InvalidInput(f"unknown type {value!r}", field=field_name, expected=" | ".join(DTYPES))
    return str(value)


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Feature:
    """A column of a feature view (or an on-demand feature's result), with its type."""

    name: str
    dtype: str

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True)
class Entity:
    """What features are about: ``join_keys`` names each key column and its type
    (``{"customer_id": "int64"}``)."""

    name: str
    join_keys: tuple[tuple[str, str], ...]
    description: str = ""
    kind = "entity"

    def __init__(self, name: str, join_keys: Mapping[str, str] | Sequence[tuple[str, str]], description: str = "") -> None:
        keys = tuple(join_keys.items()) if isinstance(join_keys, Mapping) else tuple(tuple(k) for k in join_keys)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", description)
        self.validate()

    def validate(self) -> None:
        check_name(self.name, "entity.name")
        if not self.join_keys:
            raise InvalidInput(f"entity {self.name!r} has no join key", field=f"entity.{self.name}.join_keys",
                               expected='a table of key column -> type, e.g. {customer_id = "int64"}')
        for key, dtype in self.join_keys:
            check_name(key, f"entity.{self.name}.join_keys")
            if dtype not in ("int64", "string"):
                raise InvalidInput(f"join key {key!r} of entity {self.name!r} has type {dtype!r}",
                                   field=f"entity.{self.name}.join_keys.{key}", expected="int64 | string")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.join_keys)

    def spec(self) -> dict[str, Any]:
        return {"kind": "entity", "name": self.name, "join_keys": [list(k) for k in self.join_keys],
                "description": self.description}

    @property
    def digest(self) -> str:
        return _digest(self.spec())


@dataclass(frozen=True)
class Source:
    """Where a feature view's rows come from: a table (a path or glob of CSV/Parquet files)
    of a data repository, or a DuckDB ``query`` over such tables (``tables`` maps each
    name the query uses to a path). Read at the ref a caller names, and cited by commit."""

    repository: str
    path: str | None = None
    query: str | None = None
    tables: tuple[tuple[str, str], ...] = ()

    def validate(self, where: str) -> None:
        if not isinstance(self.repository, str) or not re.match(r"^[a-z0-9][a-z0-9-]{1,62}$", self.repository):
            raise InvalidInput(f"bad repository {self.repository!r}", field=f"{where}.source.repository",
                               expected="a data repository's name")
        if (self.path is None) == (self.query is None):
            raise InvalidInput(f"{where} needs exactly one of source.path and source.query",
                               field=f"{where}.source", expected="path = 'folder/*.csv' or query = 'select ...'")
        if self.query is not None and not self.tables:
            raise InvalidInput(f"{where}.source.query names no tables", field=f"{where}.source.tables",
                               expected="a table of name -> path the query reads")
        for name, _ in self.tables:
            check_name(name, f"{where}.source.tables")

    def spec(self) -> dict[str, Any]:
        return {"repository": self.repository, "path": self.path, "query": self.query,
                "tables": [list(t) for t in self.tables]}


@dataclass(frozen=True)
class FeatureView:
    """Features of ``entities`` over time, from ``source``: ``timestamp_field`` is each row's
    event time, ``created_timestamp_field`` (optional) breaks ties, ``ttl_seconds`` (0: never)
    how long a value stays valid after its event time."""

    name: str
    entities: tuple[str, ...]
    source: Source
    features: tuple[Feature, ...]
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None
    ttl_seconds: float = 0.0
    description: str = ""
    kind = "feature_view"

    def validate(self) -> None:
        where = f"feature_view.{self.name}"
        check_name(self.name, "feature_view.name")
        if not self.entities:
            raise InvalidInput(f"{where} names no entity", field=f"{where}.entities", expected="entity names")
        self.source.validate(where)
        check_name(self.timestamp_field, f"{where}.timestamp_field")
        if self.created_timestamp_field is not None:
            check_name(self.created_timestamp_field, f"{where}.created_timestamp_field")
        if not self.features:
            raise InvalidInput(f"{where} has no features", field=f"{where}.features",
                               expected="feature columns with types")
        seen: set[str] = set()
        for feature in self.features:
            check_name(feature.name, f"{where}.features")
            check_dtype(feature.dtype, f"{where}.features.{feature.name}")
            if feature.name in seen:
                raise InvalidInput(f"feature {feature.name!r} appears twice in {self.name!r}",
                                   field=f"{where}.features.{feature.name}", expected="each feature once")
            seen.add(feature.name)
        if not (isinstance(self.ttl_seconds, int | float) and not isinstance(self.ttl_seconds, bool)
                and math.isfinite(self.ttl_seconds) and self.ttl_seconds >= 0):
            raise InvalidInput(f"bad ttl {self.ttl_seconds!r}", field=f"{where}.ttl",
                               expected="a duration like 30d (0: never expires)")

    def spec(self) -> dict[str, Any]:
        return {"kind": "feature_view", "name": self.name, "entities": list(self.entities),
                "source": self.source.spec(), "features": [f.spec() for f in self.features],
                "timestamp_field": self.timestamp_field, "created_timestamp_field": self.created_timestamp_field,
                "ttl_seconds": float(self.ttl_seconds), "description": self.description}

    @property
    def digest(self) -> str:
        return _digest(self.spec())

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at request time: ``features`` maps each output to a DuckDB SQL
    expression over ``request`` fields (sent with each entity row) and the features of
    the views ``sources`` names."""

    name: str
    request: tuple[Feature, ...]
    features: tuple[tuple[Feature, str], ...]
    sources: tuple[str, ...] = ()
    description: str = ""
    kind = "on_demand"

    def validate(self) -> None:
        where = f"on_demand.{self.name}"
        check_name(self.name, "on_demand.name")
        for feature in self.request:
            check_name(feature.name, f"{where}.request")
            check_dtype(feature.dtype, f"{where}.request.{feature.name}")
        if not self.features:
            raise InvalidInput(f"{where} computes nothing", field=f"{where}.features",
                               expected="output name -> {dtype, expression}")
        for feature, expression in self.features:
            check_name(feature.name, f"{where}.features")
            check_dtype(feature.dtype, f"{where}.features.{feature.name}")
            if not isinstance(expression, str) or not expression.strip() or ";" in expression:
                raise InvalidInput(f"bad expression for {feature.name!r}", field=f"{where}.features.{feature.name}",
                                   expected="one DuckDB SQL expression")

    def spec(self) -> dict[str, Any]:
        return {"kind": "on_demand", "name": self.name, "request": [f.spec() for f in self.request],
                "features": [{**f.spec(), "expression": e} for f, e in self.features],
                "sources": list(self.sources), "description": self.description}

    @property
    def digest(self) -> str:
        return _digest(self.spec())

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f, _ in self.features)

    def reads(self, feature: str, candidates: Iterable[str]) -> list[str]:
        """The ``candidates`` (its sources' features) the expression of ``feature`` names: its
        status is the worst of theirs (present when it reads request fields only)."""
        expression = next(e for f, e in self.features if f.name == feature)
        return [c for c in candidates if re.search(rf"(?<![A-Za-z0-9_]){re.escape(c)}(?![A-Za-z0-9_])", expression)]


@dataclass(frozen=True)
class FeatureService:
    """The features a model uses: ``features`` names views (all their features) or
    ``view:feature`` pairs, from feature views and on-demand views."""

    name: str
    features: tuple[str, ...]
    description: str = ""
    kind = "feature_service"

    def validate(self) -> None:
        check_name(self.name.replace("-", "_"), "feature_service.name")
        if self.name in RESERVED_SERVICE_NAMES:
            raise InvalidInput(f"a feature service may not be named {self.name!r}", field="feature_service.name",
                               expected=f"a name other than {', '.join(RESERVED_SERVICE_NAMES)} "
                                        "(the paths of /v1/features use them)")
        if not self.features:
            raise InvalidInput(f"feature service {self.name!r} names no features",
                               field=f"feature_service.{self.name}.features", expected="'view' or 'view:feature' items")
        for item in self.features:
            view, _, feature = item.partition(":")
            check_name(view, f"feature_service.{self.name}.features")
            if feature:
                check_name(feature, f"feature_service.{self.name}.features")

    def spec(self) -> dict[str, Any]:
        return {"kind": "feature_service", "name": self.name, "features": list(self.features),
                "description": self.description}

    @property
    def digest(self) -> str:
        return _digest(self.spec())


Definition = Entity | FeatureView | OnDemandFeatureView | FeatureService


@dataclass(frozen=True)
class Definitions:
    """A whole set of definitions, as ``features apply`` takes them."""

    entities: tuple[Entity, ...] = ()
    views: tuple[FeatureView, ...] = ()
    on_demand: tuple[OnDemandFeatureView, ...] = ()
    services: tuple[FeatureService, ...] = ()

    @classmethod
    def of(cls, items: Iterable[Definition]) -> Definitions:
        items = list(items)
        return cls(entities=tuple(i for i in items if isinstance(i, Entity)),
                   views=tuple(i for i in items if isinstance(i, FeatureView)),
                   on_demand=tuple(i for i in items if isinstance(i, OnDemandFeatureView)),
                   services=tuple(i for i in items if isinstance(i, FeatureService)))

    def all(self) -> list[Definition]:
        return [*self.entities, *self.views, *self.on_demand, *self.services]

    def specs(self) -> list[dict[str, Any]]:
        """The canonical specs (what ``from_specs`` reads back): the wire shape of ``apply``."""
        return [item.spec() for item in self.all()]

    @classmethod
    def from_specs(cls, specs: Any) -> Definitions:
        """Definitions from their specs, validated; InvalidInput naming the field otherwise."""
        if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
            raise InvalidInput("definitions must be a list of specs", field="definitions",
                               expected="[{kind, name, ...}]")
        items = []
        for i, spec in enumerate(specs):
            try:
                item = from_spec(spec)
                item.validate()
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                if isinstance(exc, InvalidInput):
                    raise
                raise InvalidInput(f"definition {i} is malformed: {exc!r}", field=f"definitions[{i}]",
                                   expected="a spec as Definitions.specs() writes it") from exc
            items.append(item)
        definitions = cls.of(items)
        definitions.check_references()
        return definitions

    def check_references(self) -> None:
        """Names unique per kind, views name known entities, services known features, and no
        two features of one service share a name. InvalidInput naming the field otherwise."""
        names: dict[str, set[str]] = {}
        for item in self.all():
            kind_names = names.setdefault(item.kind, set())
            if item.name in kind_names:
                raise InvalidInput(f"{item.kind} {item.name!r} is defined twice", field=f"{item.kind}.{item.name}",
                                   expected="each name once")
            kind_names.add(item.name)
        entities = {e.name: e for e in self.entities}
        for view in self.views:
            for entity in view.entities:
                if entity not in entities:
                    raise InvalidInput(f"feature view {view.name!r} names unknown entity {entity!r}",
                                       field=f"feature_view.{view.name}.entities",
                                       expected=f"one of {sorted(entities)}")
        views = {v.name: v for v in self.views}
        for odfv in self.on_demand:
            if odfv.name in views:
                raise InvalidInput(f"{odfv.name!r} is both a feature view and an on-demand view",
                                   field=f"on_demand.{odfv.name}", expected="distinct names")
            for source in odfv.sources:
                if source not in views:
                    raise InvalidInput(f"on-demand view {odfv.name!r} reads unknown view {source!r}",
                                       field=f"on_demand.{odfv.name}.sources", expected=f"one of {sorted(views)}")
        for service in self.services:
            self.resolve(service)

    def resolve(self, service: FeatureService) -> list[tuple[str, str]]:
        """The (view, feature) pairs ``service`` serves, in order; InvalidInput naming the
        unknown item or a name served twice."""
        views: dict[str, FeatureView | OnDemandFeatureView] = {v.name: v for v in self.views}
        views.update({o.name: o for o in self.on_demand})
        out: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        where = f"feature_service.{service.name}.features"
        for item in service.features:
            view_name, _, feature = item.partition(":")
            view = views.get(view_name)
            if view is None:
                raise InvalidInput(f"feature service {service.name!r} names unknown view {view_name!r}",
                                   field=where, expected=f"one of {sorted(views)}")
            wanted = [feature] if feature else list(view.feature_names)
            for name in wanted:
                if name not in view.feature_names:
                    raise InvalidInput(f"view {view_name!r} has no feature {name!r}", field=where,
                                       expected=f"one of {list(view.feature_names)}")
                if name in seen:
                    raise InvalidInput(f"feature {name!r} is served twice (by {seen[name]!r} and {view_name!r})",
                                       field=where, expected="each feature name once in a service")
                seen[name] = view_name
                out.append((view_name, name))
        # Every view the service reads joins all its columns by feature name (the training
        # set's row, the online row, the on-demand expressions' inputs): two of them with a
        # feature of the same name would serve one view's value as the other's.
        read = {v for v, _ in out}
        read |= {s for o in self.on_demand if o.name in read for s in o.sources}
        owner: dict[str, str] = {}
        for view in self.views:
            if view.name not in read:
                continue
            for name in view.feature_names:
                if name in owner:
                    raise InvalidInput(f"views {owner[name]!r} and {view.name!r} that feature service "
                                       f"{service.name!r} reads both have a feature {name!r}", field=where,
                                       expected="views whose features have distinct names")
                owner[name] = view.name
        # A request field named like a feature would be one value in a training set and the
        # other online.
        for odfv in self.on_demand:
            if odfv.name not in read:
                continue
            for request in odfv.request:
                clash = owner.get(request.name) or seen.get(request.name)
                if clash is not None:
                    raise InvalidInput(f"request field {request.name!r} of on-demand view {odfv.name!r} has the name "
                                       f"of a feature of {clash!r} that feature service {service.name!r} reads",
                                       field=where, expected="request fields and features with distinct names")
        return out


# ---- reading definitions: TOML and Python ------------------------------------------------

def from_toml(text: str) -> Definitions:
    """``[[entity]]``, ``[[feature_view]]``, ``[[on_demand]]`` and ``[[feature_service]]``
    tables (docs/features.md). InvalidInput naming the field on any mistake."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"the definitions are not TOML: {exc}", field="definitions", expected="TOML") from exc
    return from_mapping(doc)


def from_mapping(doc: Mapping[str, Any]) -> Definitions:
    unknown = set(doc) - set(KINDS)
    if unknown:
        raise InvalidInput(f"unknown section(s) {sorted(unknown)}", field=sorted(unknown)[0],
                           expected=" | ".join(f"[[{k}]]" for k in KINDS))
    items: list[Definition] = []
    for raw in _tables(doc, "entity"):
        _only(raw, "entity", {"name", "join_keys", "description"})
        keys = raw.get("join_keys")
        if not isinstance(keys, Mapping):
            raise InvalidInput("join_keys must be a table", field=f"entity.{raw.get('name')}.join_keys",
                               expected='{customer_id = "int64"}')
        items.append(Entity(str(raw.get("name")), dict(keys), str(raw.get("description", ""))))
    for raw in _tables(doc, "feature_view"):
        items.append(_view(raw))
    for raw in _tables(doc, "on_demand"):
        items.append(_on_demand(raw))
    for raw in _tables(doc, "feature_service"):
        _only(raw, "feature_service", {"name", "features", "description"})
        features = raw.get("features")
        where = f"feature_service.{raw.get('name')}.features"
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise InvalidInput("features must be a list of strings", field=where, expected="['view', 'view:feature']")
        service = FeatureService(str(raw.get("name")), tuple(features), str(raw.get("description", "")))
        service.validate()
        items.append(service)
    definitions = Definitions.of(items)
    definitions.check_references()
    return definitions


def _tables(doc: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    raw = doc.get(kind, [])
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        raise InvalidInput(f"{kind} must be an array of tables", field=kind, expected=f"[[{kind}]] sections")
    for r in raw:
        check_name(str(r.get("name", "")).replace("-", "_") if kind == "feature_service" else r.get("name"),
                   f"{kind}.name")
    return raw


def _only(raw: Mapping[str, Any], kind: str, allowed: set[str]) -> None:
    extra = set(raw) - allowed
    if extra:
        raise InvalidInput(f"unknown field(s) {sorted(extra)} in {kind} {raw.get('name')!r}",
                           field=f"{kind}.{raw.get('name')}.{sorted(extra)[0]}", expected=", ".join(sorted(allowed)))


def _features(raw: Any, where: str) -> tuple[Feature, ...]:
    if not isinstance(raw, Mapping):
        raise InvalidInput("features must be a table of name -> type", field=where,
                           expected='{n_loans = "int64", balance = "float64"}')
    return tuple(Feature(str(name), check_dtype(dtype, f"{where}.{name}")) for name, dtype in raw.items())


def _ttl(value: Any, where: str) -> float:
    if value in (None, 0, "0"):
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return parse_duration(str(value), where).total_seconds()


def _view(raw: Mapping[str, Any]) -> FeatureView:
    name = raw.get("name")
    where = f"feature_view.{name}"
    _only(raw, "feature_view", {"name", "entities", "source", "features", "timestamp_field",
                                "created_timestamp_field", "ttl", "description"})
    source = raw.get("source")
    if not isinstance(source, Mapping):
        raise InvalidInput("source must be a table", field=f"{where}.source",
                           expected="{repository = 'loans', path = 'customers/*.csv'} or {repository, query, tables}")
    extra = set(source) - {"repository", "path", "query", "tables"}
    if extra:
        raise InvalidInput(f"unknown field(s) {sorted(extra)} in the source of {name!r}",
                           field=f"{where}.source.{sorted(extra)[0]}", expected="repository, path, query, tables")
    tables = source.get("tables", {})
    if not isinstance(tables, Mapping):
        raise InvalidInput("source.tables must be a table of name -> path", field=f"{where}.source.tables",
                           expected="{history = 'customers/*.csv'}")
    entities = raw.get("entities")
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise InvalidInput("entities must be a list of entity names", field=f"{where}.entities",
                           expected="['customer']")
    view = FeatureView(
        name=str(name), entities=tuple(entities),
        source=Source(repository=str(source.get("repository", "")), path=source.get("path"),
                      query=source.get("query"), tables=tuple((str(k), str(v)) for k, v in tables.items())),
        features=_features(raw.get("features"), f"{where}.features"),
        timestamp_field=str(raw.get("timestamp_field", "event_timestamp")),
        created_timestamp_field=raw.get("created_timestamp_field"),
        ttl_seconds=_ttl(raw.get("ttl"), f"{where}.ttl"), description=str(raw.get("description", "")))
    view.validate()
    return view


def _on_demand(raw: Mapping[str, Any]) -> OnDemandFeatureView:
    name = raw.get("name")
    where = f"on_demand.{name}"
    _only(raw, "on_demand", {"name", "request", "features", "sources", "description"})
    outputs = raw.get("features")
    if not isinstance(outputs, Mapping) or not all(isinstance(v, Mapping) for v in outputs.values()):
        raise InvalidInput("features must map each output to {dtype, expression}", field=f"{where}.features",
                           expected="{ratio = {dtype = 'float64', expression = 'a / b'}}")
    features = tuple((Feature(str(k), check_dtype(v.get("dtype"), f"{where}.features.{k}")),
                      str(v.get("expression", ""))) for k, v in outputs.items())
    sources = raw.get("sources", [])
    if not isinstance(sources, list):
        raise InvalidInput("sources must be a list of view names", field=f"{where}.sources", expected="['view']")
    view = OnDemandFeatureView(str(name), _features(raw.get("request", {}), f"{where}.request"), features,
                               tuple(str(s) for s in sources), str(raw.get("description", "")))
    view.validate()
    return view


def from_python(path: Path) -> Definitions:
    """Run a Python file and collect the definitions it makes at module level."""
    import runpy

    try:
        namespace = runpy.run_path(str(path))
    except InvalidInput:
        raise
    except Exception as exc:  # the user's module failed: say where, never guess
        raise InvalidInput(f"{path.name} failed to run: {type(exc).__name__}: {exc}", field="definitions",
                           expected="a Python file defining Entity, FeatureView, OnDemandFeatureView and "
                                    "FeatureService objects") from exc
    items = [v for v in namespace.values() if isinstance(v, Entity | FeatureView | OnDemandFeatureView | FeatureService)]
    for item in items:
        item.validate()
    definitions = Definitions.of(items)
    definitions.check_references()
    return definitions


def load(path: Path) -> Definitions:
    """Definitions from a ``.toml`` or ``.py`` file."""
    if not path.is_file():
        raise InvalidInput(f"no such file {str(path)!r}", field="path", expected="a .toml or .py definitions file")
    if path.suffix == ".toml":
        return from_toml(path.read_text())
    if path.suffix == ".py":
        return from_python(path)
    raise InvalidInput(f"{path.name} is neither TOML nor Python", field="path", expected="a .toml or .py file")


def from_spec(spec: Mapping[str, Any]) -> Definition:
    """A definition back from its stored ``spec()``."""
    kind = spec.get("kind")
    if kind == "entity":
        return Entity(spec["name"], [tuple(k) for k in spec["join_keys"]], spec.get("description", ""))
    if kind == "feature_view":
        src = spec["source"]
        return FeatureView(spec["name"], tuple(spec["entities"]),
                           Source(src["repository"], src.get("path"), src.get("query"),
                                  tuple((str(t[0]), str(t[1])) for t in src.get("tables", []))),
                           tuple(Feature(f["name"], f["dtype"]) for f in spec["features"]),
                           spec["timestamp_field"], spec.get("created_timestamp_field"),
                           float(spec["ttl_seconds"]), spec.get("description", ""))
    if kind == "on_demand":
        return OnDemandFeatureView(spec["name"], tuple(Feature(f["name"], f["dtype"]) for f in spec["request"]),
                                   tuple((Feature(f["name"], f["dtype"]), f["expression"]) for f in spec["features"]),
                                   tuple(spec.get("sources", [])), spec.get("description", ""))
    if kind == "feature_service":
        return FeatureService(spec["name"], tuple(spec["features"]), spec.get("description", ""))
    raise InvalidInput(f"unknown definition kind {kind!r}", field="kind", expected=" | ".join(KINDS))


@dataclass(frozen=True)
class ServicePlan:
    """Everything a feature service reads, resolved: its version is the digest of all of it."""

    service: FeatureService
    entities: tuple[Entity, ...]
    views: tuple[FeatureView, ...]
    on_demand: tuple[OnDemandFeatureView, ...]
    features: tuple[tuple[str, str], ...]  # (view, feature) in the service's order
    version: str = field(default="")

    @classmethod
    def of(cls, service: FeatureService, definitions: Definitions) -> ServicePlan:
        pairs = definitions.resolve(service)
        wanted_views = {v for v, _ in pairs}
        odfvs = tuple(o for o in definitions.on_demand if o.name in wanted_views)
        view_names = wanted_views | {s for o in odfvs for s in o.sources}
        views = tuple(v for v in definitions.views if v.name in view_names)
        entity_names = {e for v in views for e in v.entities}
        entities = tuple(e for e in definitions.entities if e.name in entity_names)
        spec = {"service": service.spec(), "entities": sorted((e.spec() for e in entities), key=lambda s: s["name"]),
                "views": sorted((v.spec() for v in views), key=lambda s: s["name"]),
                "on_demand": sorted((o.spec() for o in odfvs), key=lambda s: s["name"])}
        return cls(service, entities, views, odfvs, tuple(pairs), _digest(spec)[:16])

    @property
    def join_keys(self) -> tuple[tuple[str, str], ...]:
        """Every key column the service's views join on, once, with its type."""
        out: dict[str, str] = {}
        for entity in self.entities:
            out.update(dict(entity.join_keys))
        return tuple(out.items())

    @property
    def request_fields(self) -> tuple[Feature, ...]:
        out: dict[str, Feature] = {}
        for odfv in self.on_demand:
            for f in odfv.request:
                out.setdefault(f.name, f)
        return tuple(out.values())

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for _, f in self.features)

    def view(self, name: str) -> FeatureView:
        return next(v for v in self.views if v.name == name)

    def keys_of(self, view: FeatureView) -> tuple[str, ...]:
        entities = {e.name: e for e in self.entities}
        return tuple(k for name in view.entities for k in entities[name].keys)

    def dtypes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for view in self.views:
            out.update({f.name: f.dtype for f in view.features})
        for odfv in self.on_demand:
            out.update({f.name: f.dtype for f, _ in odfv.features})
        return {name: out[name] for name in self.feature_names}
