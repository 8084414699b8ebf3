"""Aliases with an append-only history, version comparison, lineage and model cards.

An alias (``staging``, ``production``, any name) points at one version of a model.
Every change of an alias appends an :class:`AliasEvent` (who, when, from which
version to which, why) and an audit event in the same transaction, so the history
answers "what did ``production`` point to at time T" and has no gaps.

Races: a move holds a per-(model, alias) lock until its transaction ends, reads the
current version, and writes with a compare-and-swap
(``UPDATE ... WHERE version IS NOT DISTINCT FROM :old RETURNING``; DuckDB reports
rowcount -1, hence RETURNING). Each event takes the next ``seq`` of its alias under
a unique index. A writer that expected a version the alias no longer has, or that
lost the swap, gets Conflict and writes nothing.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime
from types import EllipsisType
from typing import Any, NoReturn, Protocol

from sqlalchemy import JSON, DateTime, func, text, update
from sqlmodel import Session, col, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Model, ModelVersion
from mlops_lite.metadata.tables.registry import AliasEvent, ModelAlias, ModelCard
from mlops_lite.records import (
    AliasEventRecord,
    AuditRecord,
    Lineage,
    ModelVersionRecord,
    VersionComparison,
    feature_lineage,
)
from mlops_lite.registry.semver import _SEMVER

ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ALIAS_RULE = "1-63 characters: a lowercase letter, then lowercase letters, digits, '_' and '-'"
CARD_FIELDS = ("intended_use", "limitations", "evaluation", "fairness")

# One lock per (database, model, alias), shared by every Aliases over that database in
# this process; held from before a mover's first read until its transaction has ended.
_LOCKS: dict[tuple[str, str, str], threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def check_alias_name(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_NAME.match(alias):
        raise InvalidInput(f"bad alias name {alias!r}", field="alias", expected=ALIAS_RULE)
    return alias


def _alias_lock(url: str, model: str, alias: str) -> threading.RLock:
    key = (url, model, alias)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


def _object(model: str, alias: str) -> str:
    return f"model:{model}/alias:{alias}"


class AliasGuard(Protocol):
    """What the registry asks before it moves an alias (the policy answers)."""

    def authorize_move(self, model: str, alias: str, version: str, *, actor: str, decision: str | None) -> str:
        """"move" or "override" when ``model@version`` may take ``alias`` (an ungated alias,
        or a passing or override decision, given or made now); else PolicyViolation."""


class Aliases:
    """The alias, comparison, lineage and model-card half of ``platform.registry``
    (``Registry`` exposes each method)."""

    def __init__(self, store: MetadataStore, audit: AuditTrail, actor: str) -> None:
        self._store = store
        self._audit = audit
        self._actor = actor

    # ---- moves -------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: str, *, reason: str, actor: str | None = None,
                  expected: str | EllipsisType | None = ..., override: bool = False) -> ModelVersionRecord:
        """Point ``alias`` at ``version``. With ``expected`` (a version, or None for "the
        alias is unset") the move happens only if the alias still points there; else
        Conflict. Moving an alias to the version it already has records nothing.
        ``override=True`` records the move as an (admin) override."""
        check_alias_name(alias)
        reason = _check_reason(reason)
        with self._store.session() as session:
            self._store.hold_until_end(session, _alias_lock(self._store.url, model, alias))
            target = _version_row(session, model, version)
            current = session.get(ModelAlias, (model, alias))
            now_version = current.version if current is not None else None
            if expected is not ... and expected != now_version:
                raise Conflict(
                    f"alias {alias!r} of model {model!r} points to {_show(now_version)}, not {_show(expected)}",
                    details={"expected": expected, "actual": now_version})
            if now_version == version:
                return version_record(target)
            self._move(session, model, alias, current, version, actor=actor or self._actor, reason=reason,
                       kind="override" if override else "move")
        return version_record(target)

    def rollback(self, model: str, alias: str, *, reason: str, actor: str | None = None) -> ModelVersionRecord:
        """Move ``alias`` back to the version it pointed to before its last move (a
        second rollback undoes the first). NotFound when the alias is unset; Conflict
        when its last move had no previous version."""
        check_alias_name(alias)
        reason = _check_reason(reason)
        with self._store.session() as session:
            self._store.hold_until_end(session, _alias_lock(self._store.url, model, alias))
            current = self._current(session, model, alias)
            last = _last_event(session, model, alias)
            if last is None or last.from_version is None:
                raise Conflict(f"alias {alias!r} of model {model!r} has no previous version to roll back to",
                               details={"alias": alias, "current": current.version})
            target = _version_row(session, model, last.from_version)
            self._move(session, model, alias, current, target.version, actor=actor or self._actor,
                       reason=reason, kind="rollback")
        return version_record(target)

    def delete_alias(self, model: str, alias: str, *, reason: str, actor: str | None = None,
                     expected: str | EllipsisType | None = ...) -> AliasEventRecord:
        """Unset ``alias`` (its history stays). NotFound when it is not set."""
        check_alias_name(alias)
        reason = _check_reason(reason)
        with self._store.session() as session:
            self._store.hold_until_end(session, _alias_lock(self._store.url, model, alias))
            current = self._current(session, model, alias)
            if expected is not ... and expected != current.version:
                raise Conflict(
                    f"alias {alias!r} of model {model!r} points to {current.version}, not {_show(expected)}",
                    details={"expected": expected, "actual": current.version})
            event = self._move(session, model, alias, current, None, actor=actor or self._actor, reason=reason,
                               kind="delete")
        return event

    def _move(self, session: Session, model: str, alias: str, current: ModelAlias | None, to_version: str | None,
              *, actor: str, reason: str, kind: str) -> AliasEventRecord:
        """Compare-and-swap the alias row, append the event and the audit event. The
        caller holds the alias lock and has checked ``to_version`` exists."""
        now = utcnow()
        from_version = current.version if current is not None else None
        if current is None:
            # A race on the first move of an alias loses on the primary key (Conflict).
            session.add(ModelAlias(model=model, alias=alias, version=to_version, moved_at=now, moved_by=actor))
            session.flush()
        else:
            swapped = session.exec(
                update(ModelAlias)
                .where(col(ModelAlias.model) == model, col(ModelAlias.alias) == alias,
                       col(ModelAlias.version).is_not_distinct_from(from_version))
                .values(version=to_version, moved_at=now, moved_by=actor)
                .returning(col(ModelAlias.version))).all()
            if len(swapped) != 1:
                raise Conflict(f"alias {alias!r} of model {model!r} moved while this change was being made; "
                               "nothing was written, try again",
                               details={"expected": from_version})
        last_seq = session.exec(select(func.max(AliasEvent.seq)).where(
            AliasEvent.model == model, AliasEvent.alias == alias)).one()
        row = AliasEvent(id=uuid.uuid4().hex, model=model, alias=alias, seq=(last_seq or 0) + 1, kind=kind,
                         from_version=from_version, to_version=to_version, actor=actor, reason=reason, at=now)
        session.add(row)
        session.flush()
        self._audit.append(session, actor=actor, action=f"model.alias.{kind}", object=_object(model, alias),
                           before={"version": from_version},
                           after={"version": to_version, "reason": reason, "event": row.id, "seq": row.seq})
        return _event_record(row)

    def _current(self, session: Session, model: str, alias: str) -> ModelAlias:
        current = session.get(ModelAlias, (model, alias))
        if current is None or current.version is None:
            _require_model(session, model)
            raise NotFound(f"model {model!r} has no alias {alias!r}")
        return current

    # ---- queries -----------------------------------------------------------------

    def get_alias(self, model: str, alias: str) -> ModelVersionRecord:
        check_alias_name(alias)
        with self._store.session() as session:
            current = self._current(session, model, alias)
            return version_record(_version_row(session, model, current.version))  # type: ignore[arg-type]

    def aliases(self, model: str) -> dict[str, str]:
        """Every set alias of ``model``: alias -> version, by alias name."""
        with self._store.session() as session:
            _require_model(session, model)
            rows = session.exec(select(ModelAlias.alias, ModelAlias.version).where(
                col(ModelAlias.model) == model, col(ModelAlias.version).is_not(None))
                .order_by(col(ModelAlias.alias))).all()
        return {alias: version for alias, version in rows if version is not None}

    def alias_at(self, model: str, alias: str, when: datetime) -> ModelVersionRecord | None:
        """The version ``alias`` pointed to at ``when`` (naive times are UTC), from its
        history; None when it pointed nowhere then. NotFound for an alias never set."""
        check_alias_name(alias)
        with self._store.session() as session:
            row = session.execute(_VERSION_AT, {"model": model, "alias": alias, "when": as_utc(when)}).first()
            if row is not None:
                return _version_from_row(row)
            self._explain_no_version_at(session, model, alias, when)
        return None

    def _explain_no_version_at(self, session: Session, model: str, alias: str, when: datetime) -> None:
        """After a lookup at ``when`` found nothing: NotFound if the model or the alias
        never existed, else return (the alias pointed nowhere then)."""
        if _last_event(session, model, alias) is None:
            _require_model(session, model)
            raise NotFound(f"model {model!r} has no alias {alias!r}")

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEventRecord]:
        """The alias events of ``model`` (of one alias if given), oldest first."""
        if alias is not None:
            check_alias_name(alias)
        with self._store.session() as session:
            query = select(AliasEvent).where(AliasEvent.model == model)
            if alias is not None:
                query = query.where(AliasEvent.alias == alias)
            # One alias: its own sequence; several: by time (then alias and sequence).
            order = (AliasEvent.seq,) if alias is not None else (AliasEvent.at, AliasEvent.alias, AliasEvent.seq)
            rows = session.exec(query.order_by(*order)).all()
            if not rows:
                _require_model(session, model)
                if alias is not None:
                    raise NotFound(f"model {model!r} has no alias {alias!r}")
        return [_event_record(r) for r in rows]

    # ---- comparison and lineage ---------------------------------------------------

    def compare_versions(self, model: str, a: str, b: str) -> VersionComparison:
        """Version ``b`` against ``a``: metric deltas (b - a) for the metrics both have,
        the input signature diff, the data commits of each, and the params that differ."""
        with self._store.session() as session:
            va, vb = _version_row(session, model, a), _version_row(session, model, b)
        numeric_a = {k: v for k, v in (va.metrics or {}).items() if _is_number(v)}
        numeric_b = {k: v for k, v in (vb.metrics or {}).items() if _is_number(v)}
        inputs_a = {i["name"]: i.get("type") for i in (va.signature or {}).get("inputs", [])}
        inputs_b = {i["name"]: i.get("type") for i in (vb.signature or {}).get("inputs", [])}
        params_a, params_b = va.params or {}, vb.params or {}
        return VersionComparison(
            model=model, a=a, b=b,
            metric_deltas={k: float(numeric_b[k]) - float(numeric_a[k]) for k in sorted(numeric_a.keys() & numeric_b.keys())},
            metrics_only_in_a=tuple(sorted(numeric_a.keys() - numeric_b.keys())),
            metrics_only_in_b=tuple(sorted(numeric_b.keys() - numeric_a.keys())),
            signature_changed=(va.signature or {}).get("inputs") != (vb.signature or {}).get("inputs"),
            inputs_added=tuple(n for n in inputs_b if n not in inputs_a),
            inputs_removed=tuple(n for n in inputs_a if n not in inputs_b),
            inputs_changed={n: (inputs_a[n], inputs_b[n]) for n in inputs_a
                            if n in inputs_b and inputs_a[n] != inputs_b[n]},
            outputs_changed=(va.signature or {}).get("outputs") != (vb.signature or {}).get("outputs"),
            data_commits_a=tuple(va.data_commits or ()), data_commits_b=tuple(vb.data_commits or ()),
            data_changed=sorted(va.data_commits or ()) != sorted(vb.data_commits or ()),
            params_changed={k: (params_a.get(k), params_b.get(k)) for k in sorted(params_a.keys() | params_b.keys())
                            if params_a.get(k) != params_b.get(k)},
        )

    def lineage(self, model: str, ref: str, *, at: datetime | None = None) -> Lineage:
        """The lineage of ``model@ref``: ``ref`` is a version ("1.2.0") or an alias
        ("production"); ``at`` resolves the alias at that time.

        Three queries on the happy path (the version with its card, the alias moves
        onto it, its audit events), in textual SQL: the DuckDB dialect has no statement
        cache, and compiling ORM statements would cost more than running them.
        """
        alias: str | None = None
        params: dict[str, Any] = {"model": model}
        if _SEMVER.match(ref):
            if at is not None:
                raise InvalidInput(f"'at' applies to an alias, and {ref!r} is a version", field="at",
                                   expected="no 'at' with a version, or an alias as ref")
            query, params["version"] = _LINEAGE_BY_VERSION, ref
        elif ALIAS_NAME.match(ref):
            alias = params["alias"] = ref
            if at is None:
                query = _LINEAGE_BY_ALIAS
            else:
                query, params["when"] = _LINEAGE_BY_ALIAS_AT, as_utc(at)
        else:
            raise InvalidInput(f"bad reference {ref!r}", field="ref",
                               expected=f"a version (MAJOR.MINOR.PATCH) or an alias ({ALIAS_RULE})")
        with self._store.session() as session:
            row = session.execute(query, params).first()
            if row is None:
                self._explain_no_lineage(session, model, ref, alias, params.get("when"))
            record = _version_from_row(row)
            moves = {"model": model, "version": record.version, "alias": alias, "when": params.get("when")}
            event_rows = session.execute(_MOVES_ONTO[alias is not None, at is not None], moves).all()
            audit_rows = session.execute(_AUDIT_ABOUT, {"object": f"model:{model}@{record.version}"}).all()
        events = sorted((_event_from_row(e) for e in event_rows), key=lambda e: (e.at, e.alias, e.seq))
        return Lineage(model=model, ref=ref, at=params.get("when"), alias=alias, version=record,
                       run_id=record.run_id, data_commits=record.data_commits, params=record.params,
                       metrics=record.metrics, card=dict(row.card or {}), alias_events=tuple(events),
                       audit_events=tuple(sorted((_audit_from_row(e) for e in audit_rows), key=lambda e: e.seq)),
                       **feature_lineage(record.signature))

    def _explain_no_lineage(self, session: Session, model: str, ref: str, alias: str | None,
                            when: datetime | None) -> NoReturn:
        """Raise NotFound naming what is missing: the model, the version, the alias, or
        (with ``when``) any version the alias pointed to then."""
        if alias is None:
            _version_row(session, model, ref)
        elif when is None:
            self._current(session, model, alias)
        else:
            self._explain_no_version_at(session, model, alias, when)
            raise NotFound(f"alias {alias!r} of model {model!r} pointed to no version at {when.isoformat()}")
        raise NotFound(f"model {model!r} has nothing at {ref!r}")

    # ---- model cards -------------------------------------------------------------

    def set_model_card(self, model: str, version: str, card: dict[str, Any], *,
                       actor: str | None = None) -> dict[str, Any]:
        """Store the model card of a version (replacing any earlier card), audited as
        ``model.card.set`` with the card before and after. Usual fields:
        ``intended_use``, ``limitations``, ``evaluation``, ``fairness``."""
        card = _check_card(card)
        actor = actor or self._actor
        with self._store.session() as session:
            _version_row(session, model, version)
            row = session.get(ModelCard, (model, version))
            before = dict(row.card or {}) if row is not None else {}
            if row is None:
                row = ModelCard(model=model, version=version, card=card, updated_at=utcnow(), updated_by=actor)
            else:
                row.card, row.updated_at, row.updated_by = card, utcnow(), actor
            session.add(row)
            self._audit.append(session, actor=actor, action="model.card.set", object=f"model:{model}@{version}",
                               before=before, after=card)
        return dict(card)

    def model_card(self, model: str, version: str) -> dict[str, Any]:
        """The model card of a version; {} when none was set."""
        with self._store.session() as session:
            _version_row(session, model, version)
            row = session.get(ModelCard, (model, version))
        return dict(row.card or {}) if row is not None else {}


# ---- helpers ---------------------------------------------------------------------


def _show(version: str | EllipsisType | None) -> str:
    return "nothing" if version is None else str(version)


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("an alias change needs a reason", field="reason", expected="a non-empty sentence")
    return reason.strip()


def _check_card(card: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(card, dict) or not all(isinstance(k, str) for k in card):
        raise InvalidInput("a model card is a JSON object", field="card",
                           expected=f"a dict with string keys, e.g. {', '.join(CARD_FIELDS)}")
    try:
        loaded: dict[str, Any] = json.loads(json.dumps(card, allow_nan=False))
        return loaded
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the model card is not JSON: {exc}", field="card",
                           expected="JSON values (strings, numbers, lists, objects)") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_model(session: Session, model: str) -> None:
    if session.get(Model, model) is None:
        raise NotFound(f"model {model!r} does not exist")


def _version_row(session: Session, model: str, version: str) -> ModelVersion:
    row = session.get(ModelVersion, (model, version))
    if row is None:
        _require_model(session, model)
        raise NotFound(f"model {model!r} has no version {version!r}")
    return row


def _last_event(session: Session, model: str, alias: str) -> AliasEvent | None:
    return session.exec(select(AliasEvent).where(AliasEvent.model == model, AliasEvent.alias == alias)
                        .order_by(AliasEvent.seq.desc()).limit(1)).first()  # type: ignore[attr-defined]


def version_record(row: ModelVersion) -> ModelVersionRecord:
    """The frozen record of a stored version (shared with models.py)."""
    return ModelVersionRecord(model=row.model, version=row.version, digest=row.digest, size=row.size,
                              signature=dict(row.signature), run_id=row.run_id,
                              data_commits=tuple(row.data_commits or ()), params=dict(row.params),
                              metrics=dict(row.metrics), created_at=row.created_at, created_by=row.created_by)


def _event_record(row: AliasEvent) -> AliasEventRecord:
    return AliasEventRecord(id=row.id, model=row.model, alias=row.alias, seq=row.seq, kind=row.kind,
                            from_version=row.from_version, to_version=row.to_version, actor=row.actor,
                            reason=row.reason, at=as_utc(row.at))


# ---- textual read queries (hot paths: alias_at, lineage) ---------------------------

_VERSION_COLUMNS = ("v.model, v.version, v.digest, v.size, v.signature, v.run_id, v.data_commits, v.params, "
                    "v.metrics, v.created_at, v.created_by")
_VERSION_TYPES: dict[str, Any] = {"signature": JSON, "data_commits": JSON, "params": JSON, "metrics": JSON,
                                  "created_at": DateTime(timezone=True)}
# The version an alias pointed to at :when: the last event of its history (highest
# seq) recorded at or before then. No ORDER BY anywhere here: on DuckDB a sort costs
# more than the scan, so the few rows the lists return are sorted in Python.
_TO_VERSION_AT = ("SELECT e.to_version FROM alias_events e WHERE e.model = :model AND e.alias = :alias "
                  "AND e.seq = (SELECT max(x.seq) FROM alias_events x "
                  "WHERE x.model = :model AND x.alias = :alias AND x.occurred_at <= :when)")
_VERSION_AT = text(f"SELECT {_VERSION_COLUMNS} FROM model_versions v "
                   f"WHERE v.model = :model AND v.version = ({_TO_VERSION_AT})").columns(**_VERSION_TYPES)


def _lineage_query(version_sql: str) -> Any:
    return text(f"SELECT {_VERSION_COLUMNS}, c.card FROM model_versions v "
                "LEFT JOIN model_cards c ON c.model = v.model AND c.version = v.version "
                f"WHERE v.model = :model AND v.version = {version_sql}").columns(**_VERSION_TYPES, card=JSON)


_LINEAGE_BY_VERSION = _lineage_query(":version")
_LINEAGE_BY_ALIAS = _lineage_query(
    "(SELECT a.version FROM model_aliases a WHERE a.model = :model AND a.alias = :alias)")
_LINEAGE_BY_ALIAS_AT = _lineage_query(f"({_TO_VERSION_AT})")


def _moves_query(*, alias: bool, when: bool) -> Any:
    """The moves onto one version: of one alias (up to :when) if given, else of every alias."""
    return text(
        "SELECT id, model, alias, seq, kind, from_version, to_version, actor, reason, occurred_at "
        "FROM alias_events WHERE model = :model AND to_version = :version"
        + (" AND alias = :alias" if alias else "") + (" AND occurred_at <= :when" if when else "")
    ).columns(occurred_at=DateTime(timezone=True))


_MOVES_ONTO = {(a, w): _moves_query(alias=a, when=w) for a in (False, True) for w in (False, True)}
_AUDIT_ABOUT = text(
    "SELECT seq, id, occurred_at, actor, action, object, before, after, prev_hash, hash FROM audit_events "
    "WHERE object = :object").columns(before=JSON, after=JSON, occurred_at=DateTime(timezone=True))


def _version_from_row(row: Any) -> ModelVersionRecord:
    return ModelVersionRecord(model=row.model, version=row.version, digest=row.digest, size=row.size,
                              signature=dict(row.signature or {}), run_id=row.run_id,
                              data_commits=tuple(row.data_commits or ()), params=dict(row.params or {}),
                              metrics=dict(row.metrics or {}), created_at=as_utc(row.created_at),
                              created_by=row.created_by)


def _event_from_row(row: Any) -> AliasEventRecord:
    return AliasEventRecord(id=row.id, model=row.model, alias=row.alias, seq=row.seq, kind=row.kind,
                            from_version=row.from_version, to_version=row.to_version, actor=row.actor,
                            reason=row.reason, at=as_utc(row.occurred_at))


def _audit_from_row(row: Any) -> AuditRecord:
    return AuditRecord(seq=row.seq, id=row.id, at=row.occurred_at, actor=row.actor, action=row.action,
                       object=row.object, before=row.before or {}, after=row.after or {},
                       prev_hash=row.prev_hash, hash=row.hash)
