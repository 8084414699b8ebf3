"""``platform.keys``: the home's protection at rest, and key rotation.

``rotate`` makes a new key encryption key current (a new keyfile version; with
``MLOPS_LITE_MASTER_KEY`` the operator's new value) and re-wraps every data key under
it: no payload is rewritten, and the old key encryption key is retired. Audited as
``keys.rotate``. A plaintext home answers ``encrypted: false`` and refuses rotation,
naming ``mlops-lite keys encrypt-home``.
"""

from __future__ import annotations

from mlops_lite.clock import utcnow
from mlops_lite.errors import PolicyViolation
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.privacy.protection import HomeProtection
from mlops_lite.records import DataKeyInfo, KeyRotation, KeysStatus


class Keys:
    def __init__(self, protection: HomeProtection, store: MetadataStore, audit: AuditTrail, actor: str) -> None:
        self._protection = protection
        self._store = store
        self._audit = audit
        self._actor = actor

    def status(self) -> KeysStatus:
        keyring = self._protection.keyring
        relies = tuple(self._relies_on())
        if keyring is None:
            return KeysStatus(encrypted=False, relies_on=relies)
        return KeysStatus(encrypted=True, kms=keyring.kms.name, kek_id=keyring.kms.current_id(),
                          metadata_encrypted=self._store.encrypted,
                          data_keys=tuple(DataKeyInfo(k.purpose, k.id, k.kek_id, k.created_at, k.wrapped_at)
                                          for k in keyring.status()),
                          relies_on=relies)

    def _relies_on(self) -> list[str]:
        """Checked where it can be: PostgreSQL's connection is TLS (pg_stat_ssl); the lakeFS
        endpoint is https. At-rest encryption of those servers' disks cannot be seen from here."""
        settings = self._protection.settings
        out: list[str] = []
        if not self._store.is_duckdb:
            ssl = self._store.connection_uses_tls()
            out.append("metadata: PostgreSQL, encrypted at rest by the database server's own storage encryption "
                       "(not visible from here); its connection is "
                       + ("TLS" if ssl else "NOT TLS (set database_ca for sslmode=verify-full)" if ssl is False
                          else "of unknown transport"))
        if settings.data_backend == "lakefs":
            https = (settings.lakefs_endpoint or "").lower().startswith("https://")
            out.append("data: lakeFS, encrypted at rest by its object store's server-side encryption (e.g. S3 "
                       "SSE-KMS on the storage namespace's bucket; not visible from here); its endpoint is "
                       + ("https" if https else "NOT https"))
        return out

    def rotate(self, *, actor: str | None = None) -> KeyRotation:
        keyring = self._protection.keyring
        if keyring is None:
            raise PolicyViolation("this home is not encrypted: there is no key to rotate "
                                  "(encrypt it with `mlops-lite keys encrypt-home`)")
        old, new, count = keyring.rotate()
        rotation = KeyRotation(old_kek_id=old, new_kek_id=new, data_keys=count, at=utcnow())
        with self._store.session() as session:
            self._audit.append(session, actor=actor or self._actor, action="keys.rotate", object="keys:home",
                               before={"kek_id": old},
                               after={"kek_id": new, "data_keys": count, "kms": keyring.kms.name})
        return rotation
