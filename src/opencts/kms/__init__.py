"""The key service (KMS): per-project keys for envelope encryption of trace files.

``keys`` (the keys and versions in the database), ``master`` (the KMS master key sealing their material),
``service`` (``KeyService``: data keys and unwrapping; ``open_key_service``), ``model`` (API bodies),
``errors`` (``KeyNotFound``, ``KeyDisabled``).
"""

from opencts.kms.errors import KeyDisabled, KeyNotFound
from opencts.kms.service import KeyService, open_key_service

__all__ = ["KeyDisabled", "KeyNotFound", "KeyService", "open_key_service"]
