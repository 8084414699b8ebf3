"""The composition root: ``connect()`` builds a Platform and its facets."""

from __future__ import annotations

import getpass
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlops_lite.alerts import Alerts, LogSink, Sink, WebhookSink, load_rules
from mlops_lite.config import Settings, redacted_url
from mlops_lite.daemon import read_daemon
from mlops_lite.data import DataStore
from mlops_lite.errors import InvalidInput, StoreLocked
from mlops_lite.features import Features
from mlops_lite.flow_runs import PrefectFlowRuns
from mlops_lite.inference import Deployments
from mlops_lite.inference.lineage import deployment_lineage
from mlops_lite.metadata import MetadataStore
from mlops_lite.monitoring import Monitoring
from mlops_lite.monitoring.loop import ClosedLoop
from mlops_lite.objects import ObjectStore
from mlops_lite.policy import Policy
from mlops_lite.privacy.facet import LocalRights, NoHistoryRewrite, Privacy, SubjectRights
from mlops_lite.privacy.home import make_private_home
from mlops_lite.privacy.keys_facet import Keys
from mlops_lite.privacy.protection import HomeProtection, open_protection
from mlops_lite.privacy.report import Compliance
from mlops_lite.privacy.residency import Residency
from mlops_lite.records import Identity
from mlops_lite.registry import Registry
from mlops_lite.security import AuditLog, Tokens
from mlops_lite.security.anonymize import Anonymizer, key_from_env
from mlops_lite.security.audit import load_or_create_key, open_signing
from mlops_lite.security.oidc import OidcVerifier
from mlops_lite.tracking import Tracking
from mlops_lite.training import Training

if TYPE_CHECKING:
    from mlops_lite.crypto.cipher import ObjectCipher
    from mlops_lite.data.lakefs_backend import LakeFSDataStore


class Platform:
    """The whole platform in this process, over the embedded stores.

    Facets: ``data``, ``tracking``, ``training``, ``registry``, ``policy``,
    ``deployments``, ``monitoring``, ``alerts``, ``features``, ``loop``, ``privacy``, ``audit``, ``tokens``, ``identities`` (OIDC). Close it (or use ``with``) to release
    the stores for other processes.
    """

    remote = False

    def __init__(self, settings: Settings, *, actor: str | None = None) -> None:
        self.settings = settings
        self.actor = actor or f"local:{getpass.getuser()}"
        make_private_home(settings.home)
        # Encryption at rest: the keys of this home (a new home gets them here, docs/encryption.md).
        self.protection = open_protection(settings)
        self._store = MetadataStore(settings.sql_url, encryption_key=self.protection.metadata_key())
        try:
            # Data objects and run/model artifacts live apart, so data gc never weighs artifacts.
            cipher = self.protection.object_cipher()
            objects = ObjectStore(settings.objects_dir / "artifacts", cipher)
            self.audit = AuditLog(self._store, load_or_create_key(settings.audit_key_file), open_signing(settings))
            self.tokens = Tokens(self._store, self.audit, self.actor)
            self.keys = Keys(self.protection, self._store, self.audit, self.actor)
            self.identities = OidcVerifier(settings.oidc)  # JWTs of the [[oidc]] issuers
            self.data = open_data(settings, self._store, self.audit, self.actor, cipher)
            self.tracking = Tracking(self._store, objects, self.audit, self.actor)
            self.training = Training(self.data, self.tracking, settings.parity_tolerance,
                                     features=lambda: self.features)
            # Residency: the default policy's rules over every placement of bytes (docs/compliance.md).
            self.residency = Residency(settings, self._store, self.audit, self.actor, self.data,
                                       lambda: self.policy.load(None))
            self.data.enforce_residency(
                lambda repo, profile, action, actor: self.residency.check_write(repo, profile, action, actor=actor))
            # The policy decides moves of gated aliases; it is built on the registry, so it comes as a provider.
            self.registry = Registry(self._store, objects, self.tracking, self.audit, self.actor,
                                     guard=lambda: self.policy)
            self.policy = Policy(settings, self._store, self.audit, self.registry, self.data, tracking=self.tracking,
                                 actor=self.actor, residency=self.residency.version_locations,
                                 training_sets=lambda id, inputs: self.features.training_rows(id, inputs))
            # Lineage and traces cross facets (registry, runs, data, policy, audit, the log): the
            # platform answers them, once every facet exists.
            self.monitoring = Monitoring(settings.home,  # prediction log + feedback, Parquet under the home
                                         log_key=self.protection.log_key(),
                                         lineage=lambda name, at: self.deployments.lineage(name, at))
            self.deployments = Deployments(
                self._store, self.registry, self.policy, self.audit, self.actor,
                execution_provider=settings.execution_provider,
                intra_op_threads=settings.intra_op_threads, max_batch_size=settings.max_batch_size,
                batch_rows=settings.batch_rows, batch_wait_ms=settings.batch_wait_ms,
                recorder=self.monitoring,  # served requests' outcomes, and shadow answers beside primaries
                lineage=lambda name, at: deployment_lineage(self, name, at),
                placement=self._placement)
            self.alerts = Alerts(self._store, self.audit, "monitor", caller=self.actor, sinks=alert_sinks(settings),
                                 rules=load_rules(settings.alert_rules_file)
                                 if settings.alert_rules_file.exists() else None)
            # The feature store: definitions, training sets and the online store in the metadata
            # database, served vectors logged for the skew check (docs/features.md).
            self.features = Features(self._store, objects, self.audit, self.actor, data=lambda: self.data,
                                     alerts=lambda: self.alerts, deployments=lambda: self.deployments)
            self.compliance = Compliance(self.residency, self.keys, self.audit)
            self.loop = ClosedLoop(self)  # the closed loop's steps, as the flows call them
            self.flows = PrefectFlowRuns(settings)  # the flow runs of the Prefect server beside `up`
            self.privacy = Privacy(Anonymizer(anonymization_root(settings, self.protection)), self.data,
                                   subject_rights(self))
        except BaseException:
            self._store.close()
            raise

    def _placement(self, target: Any, name: str, action: str, *, actor: str | None = None) -> None:
        """Where a version may serve: residency allows its data here, and its feature service
        version is the current one (or allowed for this deployment)."""
        self.residency.check_deployment(target, name, action, actor=actor)
        self.features.check_deployment(target, name, action, actor=actor)

    def whoami(self) -> Identity:
        """The owner of the stores: every rule below the roles still applies."""
        return Identity(name=self.actor, role="admin", kind="local")

    def summary(self) -> dict[str, Any]:
        """What this platform holds, in counts."""
        return {
            "home": str(self.settings.home),
            "database": redacted_url(self.settings.sql_url),
            "data_repositories": len(self.data.repositories()),
            "runs": self.tracking.count(),
            "models": len(self.registry.list_models()),
            "model_versions": len(self.registry.list_versions()),
            "deployments": len(self.deployments.list()),
            "audit_events": self.audit.count(),
            "execution_providers": self.deployments.providers,
        }

    def close(self) -> None:
        self.deployments.close()  # finish mirrored shadow work before the log closes
        self.alerts.close(2.0)
        self.features.close()  # write the queued served feature vectors
        self.monitoring.close()  # write the queued prediction log before the stores close
        self.tracking.close()  # flush what open runs still buffer, while the store is open
        if not isinstance(self.data, DataStore):
            self.data.close()
        self.identities.close()
        self.audit.close()  # sign what this process appended (docs/audit.md)
        self._store.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def anonymization_root(settings: Settings, protection: HomeProtection) -> bytes:
    """The root of every repository's pseudonymization keys: ``MLOPS_LITE_ANONYMIZATION_KEY``
    (a worker on another host), else the encrypted home's keyring key ``anonymize``, else
    a plaintext home's ``anonymization.key``."""
    root = protection.anonymize_root()
    return key_from_env() or (root.key if root is not None else load_or_create_key(settings.anonymization_key_file))


def subject_rights(platform: Platform) -> SubjectRights:
    """Erasure, export and retention over the embedded data store, the prediction log and the
    registry's lineage; the subject digest in audit events is keyed by the keyring's
    anonymization key (the anonymization key file on a plaintext home)."""
    if not isinstance(platform.data, DataStore):
        return NoHistoryRewrite()
    from mlops_lite.privacy.erasure import Erasure, HistoryRewriter
    from mlops_lite.privacy.retention import Retention

    rewriter = HistoryRewriter(platform._store, platform.data.objects, platform.audit)
    erasure = Erasure(rewriter, subject_key=anonymization_root(platform.settings, platform.protection),
                      tokens=lambda repository, subject: platform.privacy.subject_tokens(repository, subject),
                      predictions=platform.monitoring, actor=platform.actor)
    retention = Retention(rewriter, log_days=platform.settings.prediction_log_retention_days,
                          apply_log_retention=platform.monitoring.apply_retention, actor=platform.actor)
    return LocalRights(erasure, retention)


def alert_sinks(settings: Settings) -> list[Sink]:
    """The log always; a webhook when ``alert_webhook`` is set."""
    sinks: list[Sink] = [LogSink()]
    if settings.alert_webhook:
        # Refused here, as the platform opens, when webhook_allow does not name its host and port.
        sinks.append(WebhookSink(settings.alert_webhook, allow=settings.webhook_allow))
    return sinks


def open_data(settings: Settings, store: MetadataStore, audit: AuditLog, actor: str,
              cipher: ObjectCipher | None = None) -> DataStore | LakeFSDataStore:
    """The data backend the settings name."""
    if settings.data_backend == "lakefs":
        if not (settings.lakefs_endpoint and settings.lakefs_access_key_id and settings.lakefs_secret_access_key):
            raise InvalidInput("data_backend 'lakefs' needs lakefs_endpoint, lakefs_access_key_id and "
                               "lakefs_secret_access_key", field="lakefs_endpoint",
                               expected="the lakeFS server's URL and an access key pair")
        # The lakeFS client (httpx, its SDK) loads only for a home that uses it.
        from mlops_lite.data.lakefs_backend import LakeFSDataStore
        from mlops_lite.security.tls import client_tls

        # An https lakeFS is verified as our own clients verify: ca_bundle, else the system's roots.
        tls = client_tls(settings)
        return LakeFSDataStore(settings.lakefs_endpoint, settings.lakefs_access_key_id,
                               settings.lakefs_secret_access_key,
                               ca_file=str(settings.ca_bundle) if settings.ca_bundle else None,
                               cert_file=str(tls.cert_file) if tls.cert_file else None,
                               key_file=str(tls.key_file) if tls.key_file else None,
                               verify=tls.verify(settings.lakefs_endpoint))
    return DataStore(store, ObjectStore(settings.objects_dir / "data", cipher), audit, actor)


def open_local(settings: Settings, *, actor: str | None = None) -> Platform:
    """Open the embedded stores in this process (``mlops_lite.connect`` does when no daemon
    owns them). StoreLocked, naming the daemon, when one does."""
    daemon = read_daemon(settings.daemon_file)
    if daemon is not None and daemon.pid != os.getpid():
        raise StoreLocked(
            f"The mlops-lite daemon (pid {daemon.pid}) owns the stores in {settings.home}. "
            f"Use its HTTP API at {daemon.url} (MLOPS_LITE_URL), or stop it first.",
            pid=daemon.pid, url=daemon.url)
    return Platform(settings, actor=actor)
