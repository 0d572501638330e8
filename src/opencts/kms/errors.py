"""The key service's errors, each a domain error with its own code in KMS's style.

``KeyNotFound`` (404) is also what a key of another project is: a caller cannot tell a key that exists
elsewhere from one that never did. ``KeyDisabled`` (409) stops new data keys only; unwrapping the data
key of a file written earlier goes on working, so reading old files never depends on a key's state.
"""

from __future__ import annotations

from opencts.errors import Conflict, NotFound

#: no such key in this project
KEY_NOT_FOUND = "KMS.0207"
#: the key is disabled: no new data key until it is enabled again
KEY_DISABLED = "KMS.0303"
#: the key has no such version (a file names a version its key never had)
KEY_VERSION_NOT_FOUND = "KMS.0208"


class KeyNotFound(NotFound):
    code = KEY_NOT_FOUND


class KeyDisabled(Conflict):
    code = KEY_DISABLED
