"""FunctionGraph's function model as the SDK sends and reads it: request bodies, URNs, the limits.

The SDK checks nothing on the client side (spec §5.8), so every limit FunctionGraph documents is checked
here: runtimes (only the Python ones this server can run on its own interpreter), handler ``file.func``,
timeout 3–259,200 s, the allowed memory sizes, ``user_data`` as a JSON object of strings (the
environment). Fields the SDK may send that OpenCTS does not act on (VPC, mounts, images, …) are accepted
and echoed back unchanged in the function object, so a client that round-trips a config keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opencts.errors import BadRequest

#: the runtimes that run here; each is the service's own Python interpreter
RUNTIMES = ("Python3.9", "Python3.10", "Python3.12")
MEMORY_SIZES = (128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096)
MIN_TIMEOUT, MAX_TIMEOUT = 3, 259_200
CODE_TYPES = ("inline", "zip")
#: FunctionGraph's default quota of functions per account, applied per project
MAX_FUNCTIONS = 400
#: the environment (``user_data``) as JSON text, FunctionGraph's limit
MAX_USER_DATA = 4096
MAX_DESCRIPTION = 512
VERSION = "latest"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]|[A-Za-z]")
_PACKAGE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HANDLER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_URN = re.compile(
    r"urn:fss:([a-z0-9][a-z0-9-]{0,63}):([0-9A-Za-z_-]{1,64}):function:([A-Za-z0-9_-]{1,64})"
    r":([A-Za-z][A-Za-z0-9_-]{0,59})(?::([A-Za-z0-9_.$-]{1,64}))?"
)


@dataclass(frozen=True, slots=True)
class Urn:
    region: str
    project_id: str
    package: str
    name: str
    version: str | None

    @property
    def unversioned(self) -> str:
        return f"urn:fss:{self.region}:{self.project_id}:function:{self.package}:{self.name}"


def parse_urn(value: str) -> Urn:
    """A function URN, with or without its version; 400 naming the expected form otherwise."""
    found = _URN.fullmatch(value)
    if found is None:
        raise BadRequest(
            f"function_urn {value[:160]!r} is not a function URN"
            " (urn:fss:<region>:<project_id>:function:<package>:<name>[:<version>])"
        )
    region, project_id, package, name, version = found.groups()
    if version not in (None, VERSION, "$LATEST"):
        raise BadRequest(f"function_urn {value[:160]!r}: only the version {VERSION!r} exists here")
    return Urn(region, project_id, package, name, version)


def function_urn(region: str, project_id: str, package: str, name: str) -> str:
    return f"urn:fss:{region}:{project_id}:function:{package}:{name}"


def parse_user_data(text: str | None) -> dict[str, str]:
    """The environment: a JSON object whose values are strings (numbers and booleans are turned to text)."""
    if text is None or not text.strip():
        return {}
    if len(text) > MAX_USER_DATA:
        raise ValueError(f"is at most {MAX_USER_DATA} characters of JSON")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError('must be a JSON object of environment variables, e.g. {"KEY": "value"}') from None
    if not isinstance(doc, dict):
        raise ValueError('must be a JSON object of environment variables, e.g. {"KEY": "value"}')
    env: dict[str, str] = {}
    for key, value in doc.items():
        if not _ENV_KEY.fullmatch(key):
            raise ValueError(
                f"variable name {key[:70]!r}: letters, digits and '_', not starting with a digit"
            )
        if isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            env[key] = str(value)
        else:
            raise ValueError(f"variable {key}: the value must be a string")
    return env


class FuncCode(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file: str | None = None  # base64: the source (inline) or the zip archive
    link: str | None = None


class _Config(BaseModel):
    """Fields shared by create and update-config."""

    model_config = ConfigDict(extra="allow")

    runtime: str
    timeout: int = Field(strict=True)
    handler: str
    memory_size: int = Field(strict=True)
    user_data: str | None = None
    encrypted_user_data: str | None = None
    xrole: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value not in RUNTIMES:
            raise ValueError(
                f"{value[:40]!r} does not run here; supported runtimes: {', '.join(RUNTIMES)}"
                " (each runs on the service's own Python interpreter)"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: int) -> int:
        if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
            raise ValueError(f"must be {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds")
        return value

    @field_validator("memory_size")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value not in MEMORY_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, MEMORY_SIZES))} (MB)")
        return value

    @field_validator("handler")
    @classmethod
    def _handler(cls, value: str) -> str:
        if len(value) > 128 or not _HANDLER.fullmatch(value):
            raise ValueError("must be <file>.<function>, e.g. index.handler (index.py, def handler)")
        return value

    @field_validator("user_data", "encrypted_user_data")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        parse_user_data(value)
        return value

    def extras(self) -> dict[str, Any]:
        """What the SDK sent that OpenCTS keeps only to echo back."""
        return dict(self.model_extra or {})


class CreateFunctionRequestBody(_Config):
    func_name: str
    package: str = "default"
    code_type: str = "inline"
    code_filename: str | None = Field(None, max_length=256)
    code_url: str | None = None
    func_code: FuncCode | None = None

    @field_validator("func_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "1-60 letters, digits, '_' and '-', starting with a letter and ending with a letter or digit"
            )
        return value

    @field_validator("package")
    @classmethod
    def _package(cls, value: str) -> str:
        if not _PACKAGE.fullmatch(value):
            raise ValueError("1-64 letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _code(self) -> CreateFunctionRequestBody:
        check_code_type(self.code_type, self.func_code)
        return self


class UpdateFunctionCodeRequestBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code_type: str
    code_filename: str | None = Field(None, max_length=256)
    code_url: str | None = None
    func_code: FuncCode | None = None

    @model_validator(mode="after")
    def _code(self) -> UpdateFunctionCodeRequestBody:
        check_code_type(self.code_type, self.func_code)
        return self


class UpdateFunctionConfigRequestBody(_Config):
    func_name: str


def check_code_type(code_type: str, func_code: FuncCode | None) -> None:
    if code_type not in CODE_TYPES:
        raise ValueError(
            f"code_type {code_type[:40]!r} is not supported here: use inline (func_code.file = base64 of"
            " the source) or zip (func_code.file = base64 of a zip archive); obs, jar and images are not"
        )
    if func_code is None or not func_code.file:
        raise ValueError(f"func_code.file is required for code_type {code_type}: the base64 of the code")


InvocationStatus = Literal["WAIT", "RUNNING", "SUCCESS", "FAIL", "DISCARD"]
INVOCATION_STATUSES: tuple[InvocationStatus, ...] = ("WAIT", "RUNNING", "SUCCESS", "FAIL", "DISCARD")
