"""A home's protection state: whether it is encrypted, and the keys its stores use.

A home is encrypted when it has a keyring (``<home>/keys/keyring.json``). A new home
gets one unless ``encryption = false``; a home made before encryption existed stays
plaintext until ``mlops-lite keys encrypt-home`` (``privacy.migrate``) converts it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from mlops_lite.config import Settings
from mlops_lite.crypto.cipher import ObjectCipher
from mlops_lite.crypto.keys import DataKey, Keyring, Kms, load_kms
from mlops_lite.errors import Conflict


@dataclass(frozen=True)
class HomeProtection:
    settings: Settings
    keyring: Keyring | None

    @property
    def encrypted(self) -> bool:
        return self.keyring is not None

    def object_cipher(self) -> ObjectCipher | None:
        if self.keyring is None:
            return None
        return ObjectCipher(self.keyring.data_key("objects"), self.keyring.data_key("names"))

    def metadata_key(self) -> str | None:
        """DuckDB's ENCRYPTION_KEY for the metadata file (None: plaintext, or PostgreSQL)."""
        if self.keyring is None or self.settings.database_url is not None:
            return None
        return base64.b64encode(self.keyring.data_key("metadata").key).decode()

    def log_key(self) -> DataKey | None:
        """The key of the prediction log and feedback Parquet files."""
        return None if self.keyring is None else self.keyring.data_key("log")

    def anonymize_root(self) -> DataKey | None:
        """The root from which per-repository pseudonymization keys are derived."""
        return None if self.keyring is None else self.keyring.data_key("anonymize")


def is_new_home(settings: Settings) -> bool:
    """Nothing stored yet: no metadata database (or, on PostgreSQL, no admin token) and no objects."""
    if settings.database_url is None:
        if settings.database_path.exists():
            return False
    elif settings.token_file.exists():
        return False
    objects = settings.objects_dir
    return not (objects.exists() and any(
        entry for store in objects.iterdir() if store.is_dir()
        for sub in store.iterdir() if sub.is_dir() for entry in os.listdir(sub) if not entry.startswith(".")))


def kms_of(settings: Settings, *, create: bool = False) -> Kms:
    return load_kms(settings.kms, settings.master_key_file, create=create, settings=settings)


def open_protection(settings: Settings) -> HomeProtection:
    """The home's keys; a new home (``encryption`` on) gets its keyring here. Refuses a
    home whose encryption is part-way."""
    if settings.encrypting_marker.exists():
        raise Conflict(f"the home {settings.home} is part-way through `mlops-lite keys encrypt-home`: "
                       "run it again to finish before using the home")
    if settings.keyring_file.exists():
        return HomeProtection(settings, Keyring(settings.keyring_file, kms_of(settings)))
    if settings.encryption and is_new_home(settings):
        return HomeProtection(settings, Keyring.create(settings.keyring_file, kms_of(settings, create=True)))
    return HomeProtection(settings, None)


def keyring_path(settings: Settings) -> Path:
    return settings.keyring_file
