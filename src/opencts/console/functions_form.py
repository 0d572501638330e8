"""The Functions pages' forms, turned into the bodies the FunctionGraph API takes, so the console creates
and changes functions and triggers only in ways the API would accept, checked by the same models
(``functions.model``, ``functions.triggers``, ``functions.lts_triggers``).

The form keeps what a person typed: a refused form comes back filled in, with the model's messages.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from opencts.errors import BadRequest
from opencts.functions.model import (
    MEMORY_SIZES,
    RUNTIMES,
    CreateFunctionRequestBody,
    UpdateFunctionConfigRequestBody,
)
from opencts.functions.templates import TEMPLATES, source
from opencts.functions.triggers import CreateTriggerBody
from opencts.validation import describe

#: the runtime a new function gets unless another is chosen (the CLI's too)
DEFAULT_RUNTIME = "Python3.10"
#: blank environment rows a form offers below the variables already set
SPARE_ENV_ROWS = 3
#: operation rows the Create Trigger dialog offers without its script (which adds more)
OPERATION_ROWS = 5
#: the agency whose credentials a template's handler uses to publish to SMN (the seeds' name)
DEFAULT_AGENCY = "serverless_trust"
#: what each template's variables mean, shown beside the inputs
TEMPLATE_HINTS = {
    "SMN_Topic": "SMN topic name the alarm goes to",
    "RegionName": "region of the topic",
    "IP": "whitelisted addresses and CIDR ranges, separated by commas",
}

BLANK_CODE = '''import json


def handler(event, context):
    """Called with the event (a dict) and the context; the return value is the result."""
    context.getLogger().info("received " + json.dumps(event)[:200])
    return "ok"
'''


@dataclass(slots=True)
class FunctionForm:
    """What the create and configuration forms show and send back."""

    name: str = ""
    package: str = "default"
    runtime: str = DEFAULT_RUNTIME
    handler: str = "index.handler"
    memory: str = "128"
    timeout: str = "30"
    agency: str = ""
    description: str = ""
    code: str = BLANK_CODE
    env: list[tuple[str, str]] = field(default_factory=list)
    template: str = ""

    @property
    def env_rows(self) -> list[tuple[str, str]]:
        return self.env + [("", "")] * SPARE_ENV_ROWS


RUNTIME_CHOICES = RUNTIMES
MEMORY_CHOICES = MEMORY_SIZES


def from_template(name: str) -> FunctionForm:
    """A new function's form filled from a ready-made template (``functions.templates``)."""
    if name not in TEMPLATES:
        raise BadRequest(f"there is no template {name[:40]!r}; choose one of {', '.join(TEMPLATES)}")
    filename, handler, variables = TEMPLATES[name]
    return FunctionForm(
        name=name.replace("-", "_"),
        handler=handler,
        agency=DEFAULT_AGENCY,
        description=f"from the {name} template",
        code=source(name).decode(),
        env=[(v, "") for v in variables],
        template=name,
    )


def read_function_form(form: dict[str, str]) -> FunctionForm:
    env = []
    for i in range(50):
        key = form.get(f"env_key_{i}")
        if key is None:
            break
        if key.strip():
            env.append((key.strip(), form.get(f"env_value_{i}", "")))
    return FunctionForm(
        name=form.get("func_name", "").strip(),
        package=form.get("package", "default").strip() or "default",
        runtime=form.get("runtime", DEFAULT_RUNTIME),
        handler=form.get("handler", "").strip(),
        memory=form.get("memory_size", "128").strip(),
        timeout=form.get("timeout", "30").strip(),
        agency=form.get("xrole", "").strip(),
        description=form.get("description", ""),
        code=form.get("code", "").replace("\r\n", "\n"),
        env=env,
        template=form.get("template", ""),
    )


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise BadRequest(f"{what} must be a whole number")
    return int(text)


def _user_data(env: list[tuple[str, str]]) -> str | None:
    names = [k for k, _ in env]
    twice = sorted({k for k in names if names.count(k) > 1})
    if twice:
        raise BadRequest(f"environment variable {', '.join(twice)} is set twice; keep one row each")
    return orjson.dumps(dict(env)).decode() if env else None


def _config(f: FunctionForm) -> dict[str, Any]:
    return {
        "runtime": f.runtime,
        "handler": f.handler,
        "memory_size": _number(f.memory, "memory (MB)"),
        "timeout": _number(f.timeout, "timeout (seconds)"),
        "user_data": _user_data(f.env),
        "xrole": f.agency or None,
        "description": f.description or None,
    }


def create_body(f: FunctionForm) -> CreateFunctionRequestBody:
    """CreateFunction's body for inline code; a ValidationError or BadRequest says what to fix."""
    if not f.code.strip():
        raise BadRequest("the code is empty; write the handler, or start from a template")
    return CreateFunctionRequestBody.model_validate(
        {
            "func_name": f.name,
            "package": f.package,
            "code_type": "inline",
            "func_code": {"file": base64.b64encode(f.code.encode()).decode()},
            **_config(f),
        }
    )


def config_body(name: str, f: FunctionForm) -> UpdateFunctionConfigRequestBody:
    return UpdateFunctionConfigRequestBody.model_validate({"func_name": name, **_config(f)})


def code_b64(text: str) -> str:
    if not text.strip():
        raise BadRequest("the code is empty; write the handler before saving")
    return base64.b64encode(text.replace("\r\n", "\n").encode()).decode()


def messages(exc: ValidationError) -> list[str]:
    """Pydantic's errors as sentences naming the form field."""
    return [describe(exc)]


# ---- the Create Trigger dialog ----------------------------------------------------------------------


@dataclass(slots=True)
class TriggerForm:
    trigger_type: str = "CTS"
    name: str = ""
    operations: list[tuple[str, str, str]] = field(default_factory=list)
    stream: str = ""
    batch_size: str = "100"
    enabled: bool = True

    @property
    def operation_rows(self) -> list[tuple[str, str, str]]:
        spare = max(OPERATION_ROWS - len(self.operations), 1)
        return self.operations + [("", "", "")] * spare


def read_trigger_form(form: dict[str, str]) -> TriggerForm:
    operations = []
    for i in range(100):
        service = form.get(f"op_service_{i}")
        if service is None:
            break
        resource, name = form.get(f"op_resource_{i}", "").strip(), form.get(f"op_name_{i}", "").strip()
        if service.strip() or resource or name:
            operations.append((service.strip(), resource, name))
    return TriggerForm(
        trigger_type=form.get("trigger_type_code", "CTS"),
        name=form.get("notification_name", "").strip(),
        operations=operations,
        stream=form.get("log_stream", ""),
        batch_size=form.get("batch_size", "100").strip(),
        enabled=form.get("trigger_status", "ACTIVE") == "ACTIVE",
    )


def trigger_body(t: TriggerForm) -> CreateTriggerBody:
    """CreateFunctionTrigger's body; ``triggers.create`` then checks ``event_data`` as the API does."""
    event_data: dict[str, Any]
    if t.trigger_type == "LTS":
        group, _, stream = t.stream.partition("/")
        if not group or not stream:
            raise BadRequest("choose the log stream whose records invoke the function")
        event_data = {
            "log_group_id": group,
            "log_topic_id": stream,
            "batch_size": _number(t.batch_size, "batch size"),
        }
    else:
        incomplete = [" / ".join(o) for o in t.operations if not all(o)]
        if incomplete:
            raise BadRequest(
                f"operation {incomplete[0]!r} lacks a part: give its service type, resource type and"
                " operation name, or clear the row"
            )
        if not t.operations:
            raise BadRequest("add at least one operation (for example IAM, user, login)")
        event_data = {"name": t.name, "operations": [":".join(o) for o in t.operations]}
    return CreateTriggerBody.model_validate(
        {
            "trigger_type_code": t.trigger_type,
            "trigger_status": "ACTIVE" if t.enabled else "DISABLED",
            "event_data": event_data,
        }
    )


def login_event(*, project_id: str, domain_id: str, user_name: str, source_ip: str, now: int) -> str:
    """The test event the Test tab starts with: a CTS login trace as a CTS trigger hands it over."""
    event = {
        "cts": {
            "time": now,
            "user": {"name": user_name, "domain": {"id": domain_id}, "user_name": user_name},
            "request": {},
            "response": {},
            "code": 200,
            "service_type": "IAM",
            "resource_type": "user",
            "resource_name": user_name,
            "resource_id": "",
            "source_ip": source_ip,
            "trace_name": "login",
            "trace_type": "ConsoleAction",
            "trace_status": "normal",
            "trace_rating": "normal",
            "api_version": "3.0",
            "project_id": project_id,
            "trace_id": "00000000-0000-4000-8000-000000000000",
        }
    }
    return orjson.dumps(event, option=orjson.OPT_INDENT_2).decode()
