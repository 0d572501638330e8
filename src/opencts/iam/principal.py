"""Who is calling: the identity every authenticated request carries into handlers and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opencts.iam.permissions import SOURCE_ACTIONS, allows


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    user_name: str
    domain_id: str
    domain_name: str
    #: the project the call acts in: the token's scope, or the signed X-Project-Id / path project for AK/SK
    project_id: str | None
    roles: frozenset[str]
    method: Literal["aksk", "token", "source"]
    access_key: str | None = None
    #: temporary credentials of a function's agency (``iam.temporary``): bound to ``project_id``
    temporary: bool = False
    #: a source token's kind (``sources.tokens``): it may do the one action of its source, nothing else,
    #: not even what every authenticated user may (``permissions.ALWAYS``)
    source: str | None = None

    def can(self, action: str) -> bool:
        if self.source is not None:
            return SOURCE_ACTIONS.get(self.source) == action
        return allows(self.roles, action)
