"""Encryption at rest, below every store: the key hierarchy (``keys``: the ``Kms``
interface, the keyring of wrapped data keys), the encrypted file format (``envelope``)
and what an encrypted object store uses (``cipher``). Imports nothing of the platform."""
