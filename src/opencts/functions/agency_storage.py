"""The object-storage keys a function's agency may hand its handler: ``context.getAccessKey()`` and co.

On FunctionGraph one IAM signs for every service, so the agency's AK/SK open OBS as well as SMN. Here
the object store (OBS, MinIO, AWS S3, moto) keeps its own keys, and OpenCTS cannot mint keys that store
accepts. So the operator names one key pair of the store for functions
(``OPENCTS_FUNCTIONS_STORAGE_ACCESS_KEY``/``_SECRET_KEY``), a key of its own whose store policy allows
only the buckets functions may touch (never the archive's key: a handler could rewrite trace files), and
which agencies may hand it out (``OPENCTS_FUNCTIONS_STORAGE_AGENCIES``).

A handler of such an agency reads that pair from ``getAccessKey()``/``getSecretKey()``: a permanent pair
needs no security token, so the seeds' OBS SDK calls, which pass none, sign requests the store accepts.
``getSecurityAccessKey()``/``getSecuritySecretKey()``/``getSecurityToken()`` stay the agency's temporary
OpenCTS credentials and ``getToken()`` its OpenCTS token: a token belongs with its own AK/SK, and an OpenCTS
security token sent to a store would make it refuse the request. Any other agency, or no key configured,
leaves ``getAccessKey()`` the temporary OpenCTS AK as before.

The secret stays a ``SecretStr`` until the invocation's message to its worker; it is never logged, and the
runtime masks it in the handler's log like the invocation's other secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from opencts.config import Settings

#: ``OPENCTS_FUNCTIONS_STORAGE_AGENCIES`` value meaning every agency
EVERY_AGENCY = "*"


@dataclass(frozen=True, slots=True)
class StorageGrant:
    """One key pair of the object store and the agencies that may hand it to their functions."""

    access_key: str
    secret_key: SecretStr
    #: None: every agency
    agencies: frozenset[str] | None

    def covers(self, agency: str | None) -> bool:
        """Whether a function with agency ``agency`` gets the keys; no agency never does."""
        if not agency:
            return False
        return self.agencies is None or agency in self.agencies


def parse_agencies(value: str) -> frozenset[str] | None:
    """``"*"`` → None (every agency); otherwise the comma-separated names, blanks dropped."""
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    return None if EVERY_AGENCY in names else names


def grant_from(settings: Settings) -> StorageGrant | None:
    """The grant the settings configure, or None when no storage key is set."""
    access_key = settings.functions_storage_access_key
    secret_key = settings.functions_storage_secret_key
    if not access_key or secret_key is None:
        return None
    return StorageGrant(access_key, secret_key, parse_agencies(settings.functions_storage_agencies))
