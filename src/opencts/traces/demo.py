"""A realistic week of management traces, generated from a seed.

Why this exists: an empty audit trail teaches nothing. A newcomer who starts OpenCTS wants to try every
ListTraces filter (user, service, resource type/id/name, trace name, rating, IP, time range) and see the
key-event alarms fire, without wiring up real producers first. ``demo_week`` fabricates one plausible week
for one account: five people and an automation user working on a fleet of ECS servers, VPCs and security
groups, OBS buckets, RDS instances and CTS trackers; console logins and logouts from each person's usual
office IPs, the odd typo'd password, a handful of password-guessing bursts from unknown foreign addresses,
risky changes (security-group rules opened to the world, public bucket policies, password resets, a tracker
being disabled), 4xx/5xx failures and a few deletions of production resources.

It is pure generation: no network, no database, no clock. Everything, including every ``trace_id`` and
``request_id``, comes from a ``random.Random(seed)``, so the same arguments always give the same traces
and posting the demo twice is idempotent (the second post finds every trace id already stored). No trace
carries a secret: requests name what was changed, never a password or a key.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from opencts.clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

__all__ = ["DEMO_USERS", "demo_week"]

WEEK_MS = 7 * DAY_MS

#: The people (and the robot) who act in the demo week, in the order their ids are drawn from the RNG.
DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "ops-robot")

# Working hours are judged in the region's local time (UTC+8, where CTS's example traces come from).
_LOCAL_OFFSET_MS = 8 * HOUR_MS
_REGION = "cn-north-4"

Profile = Literal["office", "night", "any"]
Action = Literal["create", "delete", "modify"]
TraceType = Literal["ApiCall", "ConsoleAction", "SystemAction"]

# Office networks (documentation ranges, so they never collide with a real address) and a VPN exit.
_OFFICE_IPS = (
    "203.0.113.10",
    "203.0.113.24",
    "203.0.113.37",
    "198.51.100.21",
    "198.51.100.45",
    "192.0.2.5",
    "192.0.2.8",
)
_CI_IPS = ("100.85.12.40", "100.85.12.41")
_ROBOT_IPS = ("10.0.12.5", "10.0.12.6")
# Addresses nobody in the account has used before: hotels on a trip, and password guessers.
_TRAVEL_IPS = ("81.2.69.160", "89.160.20.112")
_FOREIGN_IPS = ("185.220.101.34", "45.155.205.99", "91.240.118.172", "2a0b:f4c0:4c:1::7", "5.188.10.76")

# (name, service affinity): how often each person touches each service.
_PEOPLE: tuple[tuple[str, dict[str, float]], ...] = (
    ("alice", {"ECS": 5, "VPC": 3, "OBS": 1, "RDS": 1, "CTS": 0.3}),
    ("bob", {"ECS": 1, "VPC": 0.5, "OBS": 5, "RDS": 1, "CTS": 0.2}),
    ("carol", {"ECS": 1, "VPC": 0.5, "OBS": 1, "RDS": 5, "CTS": 0.2}),
    ("dave", {"ECS": 3, "VPC": 4, "OBS": 0.5, "RDS": 0.5, "CTS": 0.2}),
    ("erin", {"ECS": 0.5, "VPC": 2, "OBS": 1, "RDS": 0.5, "CTS": 3}),
)
_ROBOT = "ops-robot"


@dataclass(frozen=True)
class _User:
    name: str
    id: str
    access_key_id: str
    office_ips: tuple[str, ...]
    affinity: dict[str, float]


@dataclass(frozen=True)
class _Resource:
    id: str
    name: str
    critical: bool = False
    enterprise_project_id: str = "0"


@dataclass(frozen=True)
class _Op:
    service: str
    trace_name: str
    resource_type: str
    pool: str
    action: Action
    weight: float
    api_version: str
    success_code: int


_OPS: tuple[_Op, ...] = (
    _Op("ECS", "createServer", "ecs", "server", "create", 3, "v1", 200),
    _Op("ECS", "deleteServer", "ecs", "server", "delete", 2.5, "v1", 200),
    _Op("ECS", "startServer", "ecs", "server", "modify", 6, "v2.1", 200),
    _Op("ECS", "stopServer", "ecs", "server", "modify", 6, "v2.1", 200),
    _Op("ECS", "rebootServer", "ecs", "server", "modify", 4, "v2.1", 200),
    _Op("ECS", "resizeServer", "ecs", "server", "modify", 1, "v1.1", 200),
    _Op("VPC", "createVpc", "vpc", "vpc", "create", 0.7, "v1", 200),
    _Op("VPC", "deleteVpc", "vpc", "vpc", "delete", 0.6, "v1", 204),
    _Op("VPC", "createSubnet", "subnet", "vpc", "modify", 1, "v1", 200),
    _Op("VPC", "createSecurityGroupRule", "securityGroupRule", "sg", "modify", 4, "v3", 201),
    _Op("VPC", "deleteSecurityGroupRule", "securityGroupRule", "sg", "modify", 2, "v3", 204),
    _Op("OBS", "createBucket", "bucket", "bucket", "create", 2, "v1", 200),
    _Op("OBS", "deleteBucket", "bucket", "bucket", "delete", 1.5, "v1", 204),
    _Op("OBS", "setBucketPolicy", "bucket", "bucket", "modify", 3, "v1", 204),
    _Op("OBS", "setBucketAcl", "bucket", "bucket", "modify", 2, "v1", 200),
    _Op("OBS", "setBucketLifecycle", "bucket", "bucket", "modify", 1, "v1", 200),
    _Op("RDS", "createInstance", "instance", "rds", "create", 0.8, "v3", 201),
    _Op("RDS", "deleteInstance", "instance", "rds", "delete", 0.7, "v3", 200),
    _Op("RDS", "resetPassword", "instance", "rds", "modify", 1.5, "v3", 200),
    _Op("RDS", "restartInstance", "instance", "rds", "modify", 3, "v3", 200),
    _Op("RDS", "createManualBackup", "backup", "rds", "modify", 2, "v3", 201),
    _Op("CTS", "createTracker", "tracker", "tracker", "create", 0.4, "v3", 201),
    _Op("CTS", "updateTracker", "tracker", "tracker", "modify", 1, "v3", 200),
)
_OPS_BY_NAME = {op.trace_name: op for op in _OPS}

# (code, weight) of failed calls; the rest succeed.
_FAILURES: tuple[tuple[int, float], ...] = ((400, 30), (403, 25), (404, 20), (409, 8), (500, 10), (503, 4))
_FAILURE_RATE = 0.05
_ERROR_TEXT = {
    400: "Invalid request parameter.",
    403: "You do not have permission to perform this operation.",
    404: "The resource does not exist.",
    409: "The resource is in a state that does not allow this operation.",
    500: "Internal server error. Try again later.",
    503: "Service temporarily unavailable.",
}
_BAD_PASSWORD = "The account or password is incorrect."

_FLAVORS = ("s6.large.2", "s6.xlarge.2", "c7.2xlarge.2", "m6.large.8")
_IMAGES = ("Ubuntu 22.04 server 64bit", "CentOS 7.9 64bit", "Huawei Cloud EulerOS 2.0 64bit")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:20].strip("-")
    return slug or "demo"


@dataclass
class _Week:
    rng: random.Random
    project_id: str
    domain: dict[str, str]
    lo: int
    hi: int
    people: list[_User] = field(default_factory=list)
    robot: _User | None = None
    pools: dict[str, tuple[list[_Resource], list[_Resource]]] = field(default_factory=dict)
    out: list[dict[str, Any]] = field(default_factory=list)

    # -- random helpers -------------------------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex32(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def access_key(self) -> str:
        return "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))

    def start(self, span_ms: int, profile: Profile) -> int:
        """A start time such that ``[start, start + span_ms]`` fits the week, shaped by ``profile``."""
        span_ms = min(span_ms, self.hi - self.lo)
        while True:
            t = self.rng.randint(self.lo, self.hi - span_ms)
            local = t + _LOCAL_OFFSET_MS
            hour = local % DAY_MS // HOUR_MS
            weekday = (local // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
            if profile == "any":
                p = 1.0
            elif profile == "night":
                p = 1.0 if hour < 5 else 0.03
            elif weekday >= 5:
                p = 0.06 if 9 <= hour < 21 else 0.01
            elif 9 <= hour < 19:
                p = 1.0
            elif 7 <= hour < 23:
                p = 0.15
            else:
                p = 0.02
            if self.rng.random() < p:
                return t

    def offsets(self, n: int, low_ms: int, high_ms: int) -> list[int]:
        """``n`` increasing offsets from 0, consecutive ones ``low_ms``..``high_ms`` apart."""
        result = [0]
        for _ in range(n - 1):
            result.append(result[-1] + self.rng.randint(low_ms, high_ms))
        return result

    # -- the cast -------------------------------------------------------------------------------------

    def cast(self) -> None:
        for name, affinity in _PEOPLE:
            ips = tuple(self.rng.sample(_OFFICE_IPS, self.rng.choice((2, 3, 3))))
            self.people.append(_User(name, self.hex32(), self.access_key(), ips, affinity))
        robot_affinity = {"ECS": 6.0, "VPC": 0.5, "OBS": 1.0, "RDS": 3.0, "CTS": 0.2}
        self.robot = _User(_ROBOT, self.hex32(), self.access_key(), _ROBOT_IPS, robot_affinity)

        prod_ep = self.uuid()
        org = _slug(self.domain["name"])

        def res(
            name: str, *, critical: bool = False, rid: str | None = None, prod: bool = False
        ) -> _Resource:
            ep = prod_ep if prod and self.rng.random() < 0.7 else "0"
            return _Resource(rid or self.uuid(), name, critical, ep)

        servers = [res(f"web-{i:02d}", prod=True) for i in range(1, 5)]
        servers += [res(f"app-{i:02d}", prod=True) for i in range(1, 5)]
        servers += [
            res("db-proxy-01", critical=True, prod=True),
            res("db-proxy-02", critical=True, prod=True),
        ]
        servers += [res("bastion-01", critical=True, prod=True), res("jenkins-01")]
        vpcs = [res("vpc-prod", critical=True, prod=True), res("vpc-staging"), res("vpc-shared-services")]
        sgs = [res("sg-web", prod=True), res("sg-app", prod=True), res("sg-db", prod=True), res("sg-bastion")]
        buckets = [
            res(f"{org}-prod-assets", prod=True, rid=f"{org}-prod-assets"),
            res(f"{org}-backups", critical=True, prod=True, rid=f"{org}-backups"),
            res(f"{org}-cts-audit-logs", critical=True, rid=f"{org}-cts-audit-logs"),
            res(f"{org}-static-web", rid=f"{org}-static-web"),
        ]
        dbs = [
            res("rds-orders-prod", critical=True, prod=True, rid=self.hex32() + "in01"),
            res("rds-users-prod", critical=True, prod=True, rid=self.hex32() + "in01"),
            res("rds-analytics", rid=self.hex32() + "in01"),
            res("rds-staging", rid=self.hex32() + "in01"),
        ]
        trackers = [res("system", critical=True), res("obs-data-tracker")]
        self.pools = {
            "server": (servers, [res(f"ci-runner-{i:02d}") for i in range(1, 7)]),
            "vpc": (vpcs, [res(f"vpc-sandbox-{i:02d}") for i in range(1, 4)]),
            "sg": (sgs, []),
            "bucket": (
                buckets,
                [res(f"{org}-tmp-export-{i:02d}", rid=f"{org}-tmp-export-{i:02d}") for i in range(1, 4)],
            ),
            "rds": (dbs, [res(f"rds-test-{i:02d}", rid=self.hex32() + "in01") for i in range(1, 4)]),
            "tracker": (trackers, [res("data-tracker-archive"), res("lts-forwarder")]),
        }

    # -- one trace ------------------------------------------------------------------------------------

    def user_dict(self, user: _User, trace_type: TraceType) -> dict[str, Any]:
        body: dict[str, Any] = {"id": user.id, "name": user.name, "domain": dict(self.domain)}
        if trace_type == "ApiCall":
            body["access_key_id"] = user.access_key_id
        return body

    def emit(self, time: int, user: _User, trace_type: TraceType, **fields: Any) -> None:
        trace: dict[str, Any] = {
            "trace_id": self.uuid(),
            "time": time,
            "trace_type": trace_type,
            "user": self.user_dict(user, trace_type),
            "request_id": self.uuid(),
            "enterprise_project_id": "0",
        }
        trace.update({k: v for k, v in fields.items() if v is not None})
        self.out.append(trace)

    def login(self, t: int, user: _User, ip: str, *, ok: bool) -> None:
        request = {"user_name": user.name, "login_protocol": "password", "login_channel": "console"}
        if ok:
            response: dict[str, Any] = {"result": "success", "mfa_authenticated": "true"}
            code, rating, message = 302, "normal", None
        else:
            response = {"result": "failure", "error_code": "IAM.0013", "error_msg": _BAD_PASSWORD}
            code, rating, message = 401, "warning", _BAD_PASSWORD
        self.emit(
            t,
            user,
            "ConsoleAction",
            trace_name="login",
            service_type="IAM",
            resource_type="user",
            resource_id=user.id,
            resource_name=user.name,
            source_ip=ip,
            code=code,
            trace_rating=rating,
            request=request,
            response=response,
            message=message,
            api_version="v3",
        )

    def logout(self, t: int, user: _User, ip: str) -> None:
        self.emit(
            t,
            user,
            "ConsoleAction",
            trace_name="logout",
            service_type="IAM",
            resource_type="user",
            resource_id=user.id,
            resource_name=user.name,
            source_ip=ip,
            code=302,
            trace_rating="normal",
            response={"result": "success"},
            api_version="v3",
        )

    def pick_op(self, user: _User, *, only: tuple[str, ...] = ()) -> _Op:
        ops = [op for op in _OPS if not only or op.trace_name in only]
        weights = [op.weight * user.affinity.get(op.service, 0.1) for op in ops]
        return self.rng.choices(ops, weights)[0]

    def target(self, op: _Op) -> _Resource:
        fleet, scratch = self.pools[op.pool]
        if op.action == "modify" or not scratch:
            return self.rng.choice(fleet + scratch if op.pool == "server" else fleet)
        if op.action == "delete" and self.rng.random() < 0.06:
            return self.rng.choice(fleet)  # somebody deletes something that mattered
        return self.rng.choice(scratch)

    def operate(
        self, t: int, user: _User, trace_type: TraceType, ip: str, op: _Op, *, fail: bool = True
    ) -> None:
        rng = self.rng
        resource = self.target(op)
        request, response, risky = self.bodies(op, resource)
        code = op.success_code
        if fail and rng.random() < _FAILURE_RATE:
            codes, weights = zip(*_FAILURES, strict=True)
            code = rng.choices(codes, weights)[0]
        if code >= 500:
            rating = "incident" if rng.random() < 0.4 else "warning"
        elif code >= 400:
            rating = "warning"
        elif op.action == "delete" and resource.critical:
            rating = "incident"
        elif risky:
            rating = "warning"
        else:
            rating = "normal"
        resource_id, resource_name = self.sub_resource(op, resource, request, response)
        message = None
        if code >= 400:
            message = _ERROR_TEXT[code]
            response = {"error_code": f"{op.service}.{code}{rng.randint(0, 99):02d}", "error_msg": message}
        self.emit(
            t,
            user,
            trace_type,
            trace_name=op.trace_name,
            service_type=op.service,
            resource_type=op.resource_type,
            resource_id=resource_id,
            resource_name=resource_name,
            source_ip=ip,
            code=code,
            trace_rating=rating,
            request=request or None,
            response=response,
            message=message,
            api_version=op.api_version,
            read_only=False,
            enterprise_project_id=resource.enterprise_project_id,
            endpoint=f"https://{op.service.lower()}.{_REGION}.myhuaweicloud.com",
        )

    @staticmethod
    def sub_resource(
        op: _Op, r: _Resource, request: dict[str, Any], response: dict[str, Any] | None
    ) -> tuple[str, str]:
        """The id and name a trace names: the rule, subnet or backup an operation on ``r`` is about."""
        name = op.trace_name
        if name == "createSecurityGroupRule" and response:
            return str(response["security_group_rule"]["id"]), r.name
        if name == "deleteSecurityGroupRule":
            return str(request["security_group_rule_id"]), r.name
        if name == "createSubnet" and response:
            return str(response["subnet"]["id"]), str(request["subnet"]["name"])
        if name == "createManualBackup" and response:
            return str(response["backup"]["id"]), str(request["name"])
        return r.id, r.name

    def bodies(self, op: _Op, r: _Resource) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
        """Request and success response of ``op`` on ``r``, and whether the change is risky."""
        rng = self.rng
        name = op.trace_name
        job = {"job_id": self.hex32()}
        if name == "createServer":
            vpc = rng.choice(self.pools["vpc"][0])
            server = {"name": r.name, "flavorRef": rng.choice(_FLAVORS), "imageRef": rng.choice(_IMAGES)}
            return {"server": {**server, "vpcid": vpc.id, "count": 1}}, {**job, "serverIds": [r.id]}, False
        if name == "deleteServer":
            return {"servers": [{"id": r.id}], "delete_publicip": True, "delete_volume": True}, job, False
        if name == "startServer":
            return {"os-start": {"servers": [{"id": r.id}]}}, job, False
        if name == "stopServer":
            return {"os-stop": {"type": "SOFT", "servers": [{"id": r.id}]}}, job, r.critical
        if name == "rebootServer":
            kind = "HARD" if rng.random() < 0.15 else "SOFT"
            return {"reboot": {"type": kind, "servers": [{"id": r.id}]}}, job, kind == "HARD"
        if name == "resizeServer":
            return {"resize": {"flavorRef": rng.choice(_FLAVORS)}}, job, False
        if name == "createVpc":
            cidr = f"10.{rng.randint(1, 250)}.0.0/16"
            return {"vpc": {"name": r.name, "cidr": cidr}}, {"vpc": {"id": r.id, "status": "OK"}}, False
        if name == "deleteVpc":
            return {}, None, False
        if name == "createSubnet":
            n = rng.randint(0, 250)
            subnet = {"name": f"{r.name}-subnet-{n}", "cidr": f"10.20.{n}.0/24", "vpc_id": r.id}
            return {"subnet": subnet}, {"subnet": {"id": self.uuid(), "status": "ACTIVE"}}, False
        if name == "createSecurityGroupRule":
            port = rng.choice((443, 443, 80, 8080, 22, 3306, 5432))
            world = rng.random() < (0.35 if port in (22, 3306, 5432) else 0.6)
            cidr = "0.0.0.0/0" if world else rng.choice(("10.0.0.0/8", "203.0.113.0/24", "192.168.0.0/16"))
            rule = {
                "security_group_id": r.id,
                "direction": "ingress",
                "protocol": "tcp",
                "multiport": str(port),
                "remote_ip_prefix": cidr,
            }
            rule_id = self.uuid()
            risky = world and port in (22, 3306, 5432)
            response = {"security_group_rule": {"id": rule_id, "security_group_id": r.id}}
            return {"security_group_rule": rule}, response, risky
        if name == "deleteSecurityGroupRule":
            return {"security_group_rule_id": self.uuid(), "security_group_id": r.id}, None, True
        if name == "createBucket":
            return {"bucket": r.name, "location": _REGION, "storage_class": "STANDARD"}, None, False
        if name == "deleteBucket":
            return {"bucket": r.name}, None, False
        if name == "setBucketPolicy":
            public = rng.random() < 0.25
            principal = ["*"] if public else [f"domain/{self.domain['id']}:user/*"]
            statement = {
                "Sid": "demo",
                "Effect": "Allow",
                "Principal": {"ID": principal},
                "Action": ["GetObject"],
                "Resource": [f"{r.name}/*"],
            }
            return {"bucket": r.name, "policy": {"Statement": [statement]}}, None, public
        if name == "setBucketAcl":
            grant = rng.choice(("READ", "READ_ACP", "FULL_CONTROL"))
            return {"bucket": r.name, "grants": [{"grantee": "owner", "permission": grant}]}, None, False
        if name == "setBucketLifecycle":
            days = rng.choice((30, 90, 180, 365))
            expiry = {"id": f"expire-{days}d", "status": "Enabled", "expiration": {"days": days}}
            return {"bucket": r.name, "rules": [expiry]}, None, False
        if name == "createInstance":
            spec = {
                "name": r.name,
                "datastore": {"type": "MySQL", "version": "8.0"},
                "flavor_ref": "rds.mysql.n1.large.2",
                "volume": {"type": "CLOUDSSD", "size": 100},
            }
            return spec, {"instance": {"id": r.id, "name": r.name, "status": "BUILD"}, **job}, False
        if name == "deleteInstance":
            return {"instance_id": r.id}, job, False
        if name == "resetPassword":
            return {"instance_id": r.id, "db_user": "root"}, {"resp": "successful"}, True
        if name == "restartInstance":
            return {"restart": {}}, job, False
        if name == "createManualBackup":
            backup = {"instance_id": r.id, "name": f"manual-{r.name}-{rng.randint(1000, 9999)}"}
            return backup, {"backup": {"id": self.hex32() + "br01", "status": "BUILDING"}}, False
        if name == "createTracker":
            bucket = self.pools["bucket"][0][2].name
            spec = {"tracker_type": "data", "tracker_name": r.name, "obs_info": {"bucket_name": bucket}}
            return spec, {"id": r.id, "tracker_name": r.name, "status": "enabled"}, False
        # updateTracker
        disable = rng.random() < 0.1
        status = "disabled" if disable else "enabled"
        update: dict[str, Any] = {"tracker_type": "system", "tracker_name": r.name, "status": status}
        return {**update, "is_lts_enabled": True}, None, disable

    # -- activities -----------------------------------------------------------------------------------

    def console_session(self) -> None:
        rng = self.rng
        user = rng.choice(self.people)
        ip = rng.choice(user.office_ips)
        typo = rng.random() < 0.07
        n_ops = rng.choice((0, 1, 2, 3, 4, 5, 6, 8))
        logs_out = rng.random() < 0.7
        n = int(typo) + 1 + n_ops + int(logs_out)
        offs = self.offsets(n, 5 * SECOND_MS, 9 * MINUTE_MS)
        t0 = self.start(offs[-1], "office")
        times = iter(t0 + x for x in offs)
        if typo:
            self.login(next(times), user, ip, ok=False)
        self.login(next(times), user, ip, ok=True)
        for _ in range(n_ops):
            self.operate(next(times), user, "ConsoleAction", ip, self.pick_op(user))
        if logs_out:
            self.logout(next(times), user, ip)

    def api_burst(self) -> None:
        rng = self.rng
        user = rng.choice(self.people)
        ip = rng.choice(_CI_IPS) if rng.random() < 0.6 else rng.choice(user.office_ips)
        offs = self.offsets(rng.randint(1, 6), 200, 40 * SECOND_MS)
        t0 = self.start(offs[-1], "office")
        for x in offs:
            self.operate(t0 + x, user, "ApiCall", ip, self.pick_op(user))

    def robot_job(self) -> None:
        rng = self.rng
        robot = self.robot
        assert robot is not None
        offs = self.offsets(rng.randint(2, 9), SECOND_MS, 3 * MINUTE_MS)
        t0 = self.start(offs[-1], "night" if rng.random() < 0.7 else "any")
        ip = rng.choice(_ROBOT_IPS)
        for x in offs:
            if rng.random() < 0.2:
                # Auto-recovery: the platform acts on the robot's behalf.
                op = self.pick_op(robot, only=("rebootServer", "restartInstance"))
                self.operate(t0 + x, robot, "SystemAction", ip, op)
            else:
                only = (
                    "startServer",
                    "stopServer",
                    "createManualBackup",
                    "setBucketLifecycle",
                    "createServer",
                    "deleteServer",
                )
                self.operate(t0 + x, robot, "ApiCall", ip, self.pick_op(robot, only=only))

    def travel_login(self) -> None:
        """A real user on a trip: an unfamiliar IP, but a normal session."""
        rng = self.rng
        user = rng.choice(self.people)
        ip = rng.choice(_TRAVEL_IPS)
        offs = self.offsets(rng.randint(2, 4), 20 * SECOND_MS, 10 * MINUTE_MS)
        t0 = self.start(offs[-1], "any")
        self.login(t0, user, ip, ok=True)
        for x in offs[1:-1]:
            self.operate(t0 + x, user, "ConsoleAction", ip, self.pick_op(user))
        self.logout(t0 + offs[-1], user, ip)

    def attack(self) -> None:
        """Password guessing from a foreign IP; sometimes it works and the intruder does damage."""
        rng = self.rng
        user = rng.choice(self.people)
        ip = rng.choice(_FOREIGN_IPS)
        guesses = rng.randint(3, 8)
        breach = rng.random() < 0.35
        damage = (
            "deleteSecurityGroupRule",
            "createSecurityGroupRule",
            "setBucketPolicy",
            "resetPassword",
            "updateTracker",
            "deleteServer",
        )
        n_ops = rng.randint(1, 3) if breach else 0
        offs = self.offsets(guesses + int(breach) + n_ops, 2 * SECOND_MS, 25 * SECOND_MS)
        t0 = self.start(offs[-1], "night" if rng.random() < 0.6 else "any")
        times = iter(t0 + x for x in offs)
        for _ in range(guesses):
            self.login(next(times), user, ip, ok=False)
        if breach:
            self.login(next(times), user, ip, ok=True)
            for _ in range(n_ops):
                op = _OPS_BY_NAME[rng.choice(damage)]
                self.operate(next(times), user, "ConsoleAction", ip, op, fail=False)

    def generate(self, count: int) -> list[dict[str, Any]]:
        activities: tuple[Callable[[], None], ...] = (
            self.console_session,
            self.api_burst,
            self.robot_job,
            self.travel_login,
            self.attack,
        )
        weights = (60.0, 25.0, 12.0, 1.0, 0.6)
        while len(self.out) < count:
            self.rng.choices(activities, weights)[0]()
        # Activities start at random times, so dropping the overshoot of the last one biases nothing.
        del self.out[count:]
        self.out.sort(key=lambda trace: (trace["time"], trace["trace_id"]))
        return self.out


def demo_week(
    *, project_id: str, domain_id: str, domain_name: str, end_ms: int, count: int = 5000, seed: int = 7
) -> list[dict[str, Any]]:
    """``count`` management traces for the week before ``end_ms``, sorted by time.

    Every dict validates as a :class:`~opencts.traces.model.TraceIn` and carries its own deterministic
    ``trace_id``; every ``time`` lies strictly between ``end_ms - 7 days + 1 min`` and ``end_ms - 1 s``
    (so a "last 7 days" query made right after ``end_ms`` sees them all). ``project_id`` is accepted so
    callers state where the week goes; traces leave it out, as producers do, and the ingest path fills it.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if not 1_000_000_000_000 + WEEK_MS <= end_ms < 100_000_000_000_000:
        raise ValueError("end_ms must be a 13-digit timestamp in milliseconds")
    week = _Week(
        rng=random.Random(seed),
        project_id=project_id,
        domain={"id": domain_id, "name": domain_name},
        lo=end_ms - WEEK_MS + MINUTE_MS + 1,
        hi=end_ms - SECOND_MS - 1,
    )
    week.cast()
    return week.generate(count)
