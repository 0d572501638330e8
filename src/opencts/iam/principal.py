"""Who is calling: the identity every authenticated request carries into handlers and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opencts.iam.permissions import allows


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    user_name: str
    domain_id: str
    domain_name: str
    #: the project the call acts in: the token's scope, or the signed X-Project-Id / path project for AK/SK
    project_id: str | None
    roles: frozenset[str]
    method: Literal["aksk", "token"]
    access_key: str | None = None
    #: temporary credentials of a function's agency (``iam.temporary``): bound to ``project_id``
    temporary: bool = False

    def can(self, action: str) -> bool:
        return allows(self.roles, action)
