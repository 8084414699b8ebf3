"""Residency that is enforced: where each store keeps its bytes, and the one check that
refuses a placement the policy's residency rules do not allow.

Locations: a data repository is where its privacy profile says (``region``, ``location``;
default: the installation's ``region`` and the home's objects folder, or the lakeFS
repository's storage namespace); the artifact store (models, run artifacts) is in
``settings.artifacts_region`` and the prediction log in ``settings.prediction_log_region``
(each default: ``region``).

Rules: the default policy's ``[residency.classes]`` maps a classification to the regions its
bytes may be placed in, else ``[residency] allowed_regions``; a policy without either
restricts nothing. A repository without a profile is listed as "unclassified" and enforced
as "personal" (refused rather than guessed).

``check_placement`` is the one check: a write, a repository created or reconfigured, a
transfer out and a deployment each call it. A refusal raises PolicyViolation (HTTP 412)
whose ``details['rule']`` names the policy key, and is audited as ``residency.refused``
with the rule, the object and the regions: never a row of data.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from mlops_lite.errors import InvalidInput, NotFound, PolicyViolation
from mlops_lite.privacy.profile import CLASSIFICATIONS, PrivacyProfile
from mlops_lite.records import ModelVersionRecord, ResidencyEntry

if TYPE_CHECKING:
    from mlops_lite.config import Settings
    from mlops_lite.metadata.audit import AuditTrail
    from mlops_lite.metadata.store import MetadataStore

UNCLASSIFIED = "unclassified"
ENFORCED_AS = "personal"
"""How a repository without a classification is enforced: as personal data."""

_REGION_SHAPE = "a lowercase region code such as 'ae' or 'eu-west-1'"
_REGION = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


class Rule(Protocol):
    @property
    def rule(self) -> str: ...

    @property
    def regions(self) -> tuple[str, ...]: ...

    def permits(self, region: str) -> bool: ...


class Rules(Protocol):
    """The residency part of a policy (``mlops_lite.policy.document.PolicySpec``)."""

    def residency_rule(self, classification: str) -> Rule | None: ...


class DataRepositories(Protocol):
    """What residency reads of the data facet: the repositories, their profiles, their commits."""

    def repositories(self) -> builtins.list[Any]: ...

    def repo(self, name: str) -> Any: ...


def classification_of(profile: PrivacyProfile | None) -> str:
    return profile.classification if profile is not None else UNCLASSIFIED


def enforced_class(classification: str) -> str:
    return ENFORCED_AS if classification == UNCLASSIFIED else classification


def most_restricted(classes: Iterable[str]) -> str | None:
    """The most restricted of ``classes`` (unclassified counts as personal); None for none."""
    ranked = [CLASSIFICATIONS.index(enforced_class(c)) for c in classes]
    return CLASSIFICATIONS[max(ranked)] if ranked else None


class Residency:
    def __init__(self, settings: Settings, store: MetadataStore, audit: AuditTrail, actor: str,
                 data: DataRepositories, rules: Callable[[], Rules]) -> None:
        """``rules`` answers the default policy's residency rules (read at every check,
        so an edit of the policy file takes effect at the next write)."""
        self._settings = settings
        self._store = store
        self._audit = audit
        self._actor = actor
        self._data = data
        self._rules = rules

    # ---- where things are ----------------------------------------------------------

    @property
    def artifacts_region(self) -> str:
        return self._settings.artifacts_region or self._settings.region

    @property
    def artifacts_location(self) -> str:
        return str(self._settings.objects_dir / "artifacts")

    @property
    def prediction_log_region(self) -> str:
        return self._settings.prediction_log_region or self._settings.region

    @property
    def serving_region(self) -> str:
        return self._settings.region

    def region_of(self, profile: PrivacyProfile | None) -> str:
        return (profile.region if profile is not None and profile.region else None) or self._settings.region

    def location_of(self, repository: str, profile: PrivacyProfile | None) -> str:
        if profile is not None and profile.location:
            return profile.location
        if self._settings.data_backend == "lakefs":
            return f"lakeFS {self._settings.lakefs_endpoint}: the storage namespace of repository {repository}"
        return str(self._settings.objects_dir)

    def repositories(self) -> list[str]:
        return [str(record.name) for record in self._data.repositories()]

    def profile(self, repository: str) -> PrivacyProfile | None:
        profile: PrivacyProfile | None = self._data.repo(repository).config().privacy
        return profile

    def locations(self) -> list[ResidencyEntry]:
        """Every dataset, the artifact store and the prediction log: where each lives, its
        classification and whether the default policy allows it there. The two stores take
        the most restricted classification of the installation's data (models and served
        features derive from it)."""
        rules = self._rules()
        entries: list[ResidencyEntry] = []
        for name in self.repositories():
            profile = self.profile(name)
            entries.append(_entry(rules, "dataset", name, classification_of(profile),
                                  self.region_of(profile), self.location_of(name, profile)))
        derived = most_restricted(e.classification for e in entries) or "internal"
        entries.append(_entry(rules, "artifacts", "artifact store", derived, self.artifacts_region,
                              self.artifacts_location))
        entries.append(_entry(rules, "prediction-log", "prediction log", derived, self.prediction_log_region,
                              str(self._settings.predictions_dir)))
        return entries

    def version_locations(self, version: ModelVersionRecord, rules: Rules) -> list[ResidencyEntry]:
        """Where ``version``'s data commits live (their repositories' profiles) and where its
        artifacts live, the artifact store checked against the rule of each class of its data
        (with no data commit found: as unclassified)."""
        entries: list[ResidencyEntry] = []
        for commit in version.data_commits:
            repository = self.repository_of(commit)
            if repository is None:
                entries.append(ResidencyEntry(kind="dataset", name=f"commit {commit[:12]}",
                                              classification=UNCLASSIFIED, region="unknown",
                                              location="no repository holds this commit", status="violating"))
                continue
            profile = self.profile(repository)
            entries.append(_entry(rules, "dataset", f"{repository}@{commit[:12]}", classification_of(profile),
                                  self.region_of(profile), self.location_of(repository, profile)))
        classes = sorted({e.classification for e in entries}) or [UNCLASSIFIED]
        for classification in classes:
            entries.append(_entry(rules, "artifacts", f"{version.model}@{version.version}", classification,
                                  self.artifacts_region, self.artifacts_location))
        return entries

    def repository_of(self, commit: str) -> str | None:
        for name in self.repositories():
            try:
                self._data.repo(name).commit(commit)
            except (NotFound, InvalidInput):
                continue
            return name
        return None

    # ---- enforcement ---------------------------------------------------------------

    def check_placement(self, classification: str, region: str, action: str, object: str, *,
                        actor: str | None = None) -> None:
        """Refuse placing bytes of ``classification`` in ``region`` unless the default
        policy's rule for the class allows it: PolicyViolation naming the rule, audited as
        ``residency.refused``. ``action`` says what was tried (``data.commit``,
        ``data.export``, ``deployment.deploy`` ...), ``object`` on what."""
        if not isinstance(region, str) or not region:
            raise InvalidInput("a placement needs a region", field="region", expected=_REGION_SHAPE)
        refusal = _refusal(self._rules(), classification, region, action, object)
        if refusal is None:
            return
        with self._store.session() as session:
            self._audit.append(session, actor=actor or self._actor, action="residency.refused", object=object,
                               after={k: refusal.details[k] for k in ("rule", "action", "classification",
                                                                       "region", "allowed")})
        raise refusal

    def check_repository(self, repository: str, profile: PrivacyProfile | None, action: str, *,
                         region: str | None = None, actor: str | None = None) -> None:
        """A repository's bytes placed in ``region`` (default: its own) by ``action``."""
        self.check_placement(classification_of(profile), region or self.region_of(profile), action,
                             f"data:{repository}", actor=actor)

    def check_write(self, repository: str, profile: Callable[[], PrivacyProfile | None], action: str, *,
                    actor: str | None = None) -> None:
        """A write to ``repository`` (``profile`` loads its profile, read only when the rules
        restrict some classification: a policy without residency costs a write nothing)."""
        rules = self._rules()
        if all(rules.residency_rule(c) is None for c in CLASSIFICATIONS):
            return
        self.check_repository(repository, profile(), action, actor=actor)

    def check_transfer(self, repository: str, region: str, *, actor: str | None = None) -> None:
        """An export or replication of ``repository`` to ``region``."""
        if not isinstance(region, str) or not _REGION.match(region):
            raise InvalidInput(f"bad region {region!r}", field="region", expected=_REGION_SHAPE)
        self.check_repository(repository, self.profile(repository), "data.export", region=region, actor=actor)

    def check_deployment(self, version: ModelVersionRecord, deployment: str, action: str, *,
                         actor: str | None = None) -> None:
        """A deployment serves (and logs the features of) ``version`` in the serving region and
        the prediction log's region: each of its data repositories' classes must allow both."""
        seen: set[tuple[str, str]] = set()
        for commit in version.data_commits:
            repository = self.repository_of(commit)
            classification = classification_of(self.profile(repository)) if repository else UNCLASSIFIED
            for region in (self.serving_region, self.prediction_log_region):
                if (classification, region) in seen:
                    continue
                seen.add((classification, region))
                self.check_placement(classification, region, action, f"deployment:{deployment}", actor=actor)


def _entry(rules: Rules, kind: str, name: str, classification: str, region: str, location: str) -> ResidencyEntry:
    rule = rules.residency_rule(enforced_class(classification))
    ok = rule is None or rule.permits(region)
    return ResidencyEntry(kind=kind, name=name, classification=classification, region=region, location=location,
                          allowed=tuple(rule.regions) if rule is not None else ("*",),
                          rule=rule.rule if rule is not None else None, status="allowed" if ok else "violating")


def _refusal(rules: Rules, classification: str, region: str, action: str, object: str) -> PolicyViolation | None:
    enforced = enforced_class(classification)
    rule = rules.residency_rule(enforced)
    if rule is None or rule.permits(region):
        return None
    shown = classification if enforced == classification else f"{classification} (enforced as {enforced})"
    return PolicyViolation(
        f"residency: {action} on {object} would place {shown} data in region {region!r}; "
        f"{rule.rule} allows only {', '.join(rule.regions)}",
        details={"rule": rule.rule, "action": action, "object": object, "classification": classification,
                 "region": region, "allowed": list(rule.regions),
                 "gates": [{"gate": "residency.region", "passed": False, "measured": region,
                            "bound": f"one of {list(rule.regions)}", "detail": rule.rule}]})

