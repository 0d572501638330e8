"""Functions in the database, and the function object as FunctionGraph returns it.

Every function takes a ``Connection`` and runs inside the caller's transaction. A function is addressed
by its URN without a version (``…:function:<package>:<name>``); the one version that exists is
``latest``, and a URN naming it (or none) finds the same row. The ``config`` column holds what the SDK
sent that OpenCTS only echoes (VPC, mounts, images, …), so a config round-trips.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from opencts.clock import iso_ms
from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.functions.code import Code, check_handler
from opencts.functions.model import (
    MAX_FUNCTIONS,
    VERSION,
    CreateFunctionRequestBody,
    UpdateFunctionConfigRequestBody,
    Urn,
    function_urn,
    parse_urn,
    parse_user_data,
)
from opencts.functions.runtime import FunctionSpec
from opencts.iam.projects import lock_project
from opencts.store.tables import functions, projects

__all__ = ["FunctionRecord", "Urn", "get_by_urn", "parse_urn", "parse_user_data"]

#: ListFunctions' ``maxitems``: FunctionGraph's default and ceiling
DEFAULT_PAGE, MAX_PAGE = 400, 400


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """One stored function without its code (which only the runtime, once per digest, needs)."""

    func_id: str
    project_id: str
    domain_id: str
    project_name: str
    package: str
    name: str
    func_urn: str  # without a version
    runtime: str
    handler: str
    timeout: int
    memory_size: int
    code_type: str
    code_filename: str | None
    code_digest: str
    code_size: int
    user_data: str
    encrypted_user_data: str | None  # sealed
    description: str
    xrole: str | None
    config: dict[str, Any]
    created_at: int
    last_modified: int

    @property
    def versioned_urn(self) -> str:
        return f"{self.func_urn}:{VERSION}"

    def spec(self, environment: dict[str, str]) -> FunctionSpec:
        """What the runtime needs; ``environment`` is user_data with the opened encrypted_user_data."""
        return FunctionSpec(
            func_id=self.func_id,
            func_urn=self.versioned_urn,
            project_id=self.project_id,
            package=self.package,
            name=self.name,
            version=VERSION,
            runtime=self.runtime,
            handler=self.handler,
            timeout_s=self.timeout,
            memory_mb=self.memory_size,
            code_digest=self.code_digest,
            user_data=environment,
        )

    def environment(self) -> dict[str, str]:
        return parse_user_data(self.user_data)


_COLUMNS = [c for c in functions.c if c.name != "code"]


def _select() -> Any:
    return select(*_COLUMNS, projects.c.domain_id, projects.c.name.label("project_name")).join(
        projects, projects.c.id == functions.c.project_id
    )


def _record(row: Row[Any]) -> FunctionRecord:
    return FunctionRecord(
        func_id=row.func_id,
        project_id=row.project_id,
        domain_id=row.domain_id,
        project_name=row.project_name,
        package=row.package,
        name=row.name,
        func_urn=row.func_urn,
        runtime=row.runtime,
        handler=row.handler,
        timeout=row.timeout,
        memory_size=row.memory_size,
        code_type=row.code_type,
        code_filename=row.code_filename,
        code_digest=row.code_digest,
        code_size=row.code_size,
        user_data=row.user_data,
        encrypted_user_data=row.encrypted_user_data,
        description=row.description,
        xrole=row.xrole,
        config=orjson.loads(row.config),
        created_at=row.created_at,
        last_modified=row.last_modified,
    )


def get_by_urn(conn: Connection, project_id: str, urn: str) -> FunctionRecord:
    """The function a URN (with or without ``:latest``) names in this project; 404 otherwise."""
    parsed = parse_urn(urn)
    if parsed.project_id != project_id:
        raise NotFound(f"function {urn[:200]} does not exist in project {project_id}")
    row = conn.execute(
        _select().where(functions.c.project_id == project_id, functions.c.func_urn == parsed.unversioned)
    ).first()
    if row is None:
        raise NotFound(f"function {parsed.unversioned} does not exist")
    return _record(row)


def get_by_id(conn: Connection, func_id: str) -> FunctionRecord | None:
    row = conn.execute(_select().where(functions.c.func_id == func_id)).first()
    return _record(row) if row is not None else None


def _reload(conn: Connection, func_id: str) -> FunctionRecord:
    """The row as just written in this transaction (so it exists)."""
    found = get_by_id(conn, func_id)
    assert found is not None
    return found


def code_of(conn: Connection, func_id: str, digest: str) -> bytes:
    """The zip the runtime unpacks; NotFound if the function changed its code since ``digest``."""
    data = conn.execute(
        select(functions.c.code).where(functions.c.func_id == func_id, functions.c.code_digest == digest)
    ).scalar()
    if data is None:
        raise NotFound(f"function {func_id} has no code with digest {digest[:16]}…")
    return bytes(data)


def create(
    conn: Connection,
    *,
    project_id: str,
    region: str,
    body: CreateFunctionRequestBody,
    code: Code,
    encrypted_user_data: str | None,
    now: int,
) -> FunctionRecord:
    lock_project(conn, project_id)
    count = conn.execute(
        select(func.count()).select_from(functions).where(functions.c.project_id == project_id)
    ).scalar_one()
    if count >= MAX_FUNCTIONS:
        raise QuotaExceeded(
            f"project {project_id} has {MAX_FUNCTIONS} functions already, the most it may have"
        )
    urn = function_urn(region, project_id, body.package, body.func_name)
    values = {
        "func_id": str(uuid.uuid4()),
        "project_id": project_id,
        "package": body.package,
        "name": body.func_name,
        "func_urn": urn,
        "runtime": body.runtime,
        "handler": body.handler,
        "timeout": body.timeout,
        "memory_size": body.memory_size,
        "code_type": body.code_type,
        "code_filename": code.filename,
        "code": code.zip,
        "code_digest": code.digest,
        "code_size": len(code.zip),
        "user_data": body.user_data or "",
        "encrypted_user_data": encrypted_user_data,
        "description": body.description or "",
        "xrole": body.xrole,
        "config": orjson.dumps(body.extras()).decode(),
        "created_at": now,
        "last_modified": now,
    }
    try:
        with conn.begin_nested():
            conn.execute(insert(functions).values(**values))
    except IntegrityError:
        raise Conflict(f"function {body.package}/{body.func_name} exists already in this project") from None
    return _reload(conn, str(values["func_id"]))


def set_encrypted_user_data(conn: Connection, record: FunctionRecord, sealed: str | None) -> FunctionRecord:
    """Sealed under the function's own id, which exists only once the row does."""
    conn.execute(
        update(functions).where(functions.c.func_id == record.func_id).values(encrypted_user_data=sealed)
    )
    return _reload(conn, record.func_id)


def update_code(
    conn: Connection, record: FunctionRecord, *, code_type: str, code: Code, now: int
) -> FunctionRecord:
    conn.execute(
        update(functions)
        .where(functions.c.func_id == record.func_id)
        .values(
            code_type=code_type,
            code_filename=code.filename,
            code=code.zip,
            code_digest=code.digest,
            code_size=len(code.zip),
            last_modified=now,
        )
    )
    return _reload(conn, record.func_id)


def update_config(
    conn: Connection,
    record: FunctionRecord,
    *,
    body: UpdateFunctionConfigRequestBody,
    encrypted_user_data: str | None,
    now: int,
) -> FunctionRecord:
    if body.func_name != record.name:
        raise BadRequest(
            f"func_name {body.func_name[:64]!r} differs from the function's name {record.name!r}"
        )
    if body.handler != record.handler:
        data = conn.execute(
            select(functions.c.code).where(functions.c.func_id == record.func_id)
        ).scalar_one()
        check_handler(record.code_type, bytes(data), body.handler)
    conn.execute(
        update(functions)
        .where(functions.c.func_id == record.func_id)
        .values(
            runtime=body.runtime,
            handler=body.handler,
            timeout=body.timeout,
            memory_size=body.memory_size,
            user_data=body.user_data or "",
            encrypted_user_data=encrypted_user_data,
            description=body.description or "",
            xrole=body.xrole,
            config=orjson.dumps({**record.config, **body.extras()}).decode(),
            last_modified=now,
        )
    )
    return _reload(conn, record.func_id)


def delete_function(conn: Connection, record: FunctionRecord) -> None:
    """The function, its triggers and its invocation records (the foreign keys cascade)."""
    conn.execute(delete(functions).where(functions.c.func_id == record.func_id))


def list_functions(
    conn: Connection,
    project_id: str,
    *,
    marker: int = 0,
    limit: int = DEFAULT_PAGE,
    package: str | None = None,
    name_contains: str | None = None,
) -> tuple[list[FunctionRecord], int, int]:
    """A page in creation order: (functions, next_marker, count of all that match)."""
    where = [functions.c.project_id == project_id]
    if package:
        where.append(functions.c.package == package)
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(functions.c.name.like(f"%{escaped}%", escape="\\"))
    total = int(conn.execute(select(func.count()).select_from(functions).where(*where)).scalar_one())
    rows = conn.execute(
        _select()
        .where(*where)
        .order_by(functions.c.created_at, functions.c.func_id)
        .offset(marker)
        .limit(limit)
    ).all()
    found = [_record(r) for r in rows]
    return found, marker + len(found), total


def function_object(record: FunctionRecord, *, summary: bool = False) -> dict[str, Any]:
    """The function as FunctionGraph shows it (ShowFunctionConfig); ``summary`` for ListFunctions."""
    body: dict[str, Any] = {
        **record.config,
        "func_id": record.func_id,
        "resource_id": record.func_id,
        "func_urn": record.versioned_urn,
        "func_name": record.name,
        "domain_id": record.domain_id,
        "namespace": record.project_id,
        "project_name": record.project_name,
        "package": record.package,
        "runtime": record.runtime,
        "timeout": record.timeout,
        "handler": record.handler,
        "memory_size": record.memory_size,
        "cpu": max(1, record.memory_size // 128) * 100,
        "code_type": record.code_type,
        "code_url": "",
        "code_filename": record.code_filename or "",
        "code_size": record.code_size,
        "user_data": record.user_data,
        # sealed at rest; FunctionGraph never returns it in clear
        "encrypted_user_data": "",
        "digest": record.code_digest,
        "version": VERSION,
        "image_name": VERSION,
        "xrole": record.xrole or "",
        "description": record.description,
        "last_modified": iso_ms(record.last_modified),
        "type": "v2",
        "long_time": record.timeout > 900,
    }
    if summary:
        body.pop("func_id")
    return body
