"""The generator of the demo week: a cast, their resources, and activities drawn from a seeded RNG."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from opencts.clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS
from opencts.traces.demo import bodies
from opencts.traces.demo.catalogue import (
    BAD_PASSWORD,
    CI_IPS,
    ERROR_TEXT,
    FAILURE_RATE,
    FAILURES,
    FOREIGN_IPS,
    LOCAL_OFFSET_MS,
    OFFICE_IPS,
    OPS,
    OPS_BY_NAME,
    PEOPLE,
    REGION,
    ROBOT,
    ROBOT_IPS,
    TRAVEL_IPS,
    Op,
)

WEEK_MS = 7 * DAY_MS

Profile = Literal["office", "night", "any"]
TraceType = Literal["ApiCall", "ConsoleAction", "SystemAction"]


@dataclass(frozen=True)
class User:
    name: str
    id: str
    access_key_id: str
    office_ips: tuple[str, ...]
    affinity: dict[str, float]


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    critical: bool = False
    enterprise_project_id: str = "0"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:20].strip("-")
    return slug or "demo"


@dataclass
class Week:
    rng: random.Random
    project_id: str
    domain: dict[str, str]
    lo: int
    hi: int
    people: list[User] = field(default_factory=list)
    robot: User | None = None
    pools: dict[str, tuple[list[Resource], list[Resource]]] = field(default_factory=dict)
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
            local = t + LOCAL_OFFSET_MS
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
        for name, affinity in PEOPLE:
            ips = tuple(self.rng.sample(OFFICE_IPS, self.rng.choice((2, 3, 3))))
            self.people.append(User(name, self.hex32(), self.access_key(), ips, affinity))
        robot_affinity = {"ECS": 6.0, "VPC": 0.5, "OBS": 1.0, "RDS": 3.0, "CTS": 0.2}
        self.robot = User(ROBOT, self.hex32(), self.access_key(), ROBOT_IPS, robot_affinity)

        prod_ep = self.uuid()
        org = _slug(self.domain["name"])

        def res(name: str, *, critical: bool = False, rid: str | None = None, prod: bool = False) -> Resource:
            ep = prod_ep if prod and self.rng.random() < 0.7 else "0"
            return Resource(rid or self.uuid(), name, critical, ep)

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

    def user_dict(self, user: User, trace_type: TraceType) -> dict[str, Any]:
        body: dict[str, Any] = {"id": user.id, "name": user.name, "domain": dict(self.domain)}
        if trace_type == "ApiCall":
            body["access_key_id"] = user.access_key_id
        return body

    def emit(self, time: int, user: User, trace_type: TraceType, **fields: Any) -> None:
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

    def login(self, t: int, user: User, ip: str, *, ok: bool) -> None:
        request = {"user_name": user.name, "login_protocol": "password", "login_channel": "console"}
        if ok:
            response: dict[str, Any] = {"result": "success", "mfa_authenticated": "true"}
            code, rating, message = 302, "normal", None
        else:
            response = {"result": "failure", "error_code": "IAM.0013", "error_msg": BAD_PASSWORD}
            code, rating, message = 401, "warning", BAD_PASSWORD
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

    def logout(self, t: int, user: User, ip: str) -> None:
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

    def pick_op(self, user: User, *, only: tuple[str, ...] = ()) -> Op:
        ops = [op for op in OPS if not only or op.trace_name in only]
        weights = [op.weight * user.affinity.get(op.service, 0.1) for op in ops]
        return self.rng.choices(ops, weights)[0]

    def target(self, op: Op) -> Resource:
        fleet, scratch = self.pools[op.pool]
        if op.action == "modify" or not scratch:
            return self.rng.choice(fleet + scratch if op.pool == "server" else fleet)
        if op.action == "delete" and self.rng.random() < 0.06:
            return self.rng.choice(fleet)  # somebody deletes something that mattered
        return self.rng.choice(scratch)

    def operate(
        self, t: int, user: User, trace_type: TraceType, ip: str, op: Op, *, fail: bool = True
    ) -> None:
        rng = self.rng
        resource = self.target(op)
        request, response, risky = bodies.bodies(self, op, resource)
        code = op.success_code
        if fail and rng.random() < FAILURE_RATE:
            codes, weights = zip(*FAILURES, strict=True)
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
            message = ERROR_TEXT[code]
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
            endpoint=f"https://{op.service.lower()}.{REGION}.myhuaweicloud.com",
        )

    @staticmethod
    def sub_resource(
        op: Op, r: Resource, request: dict[str, Any], response: dict[str, Any] | None
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
        ip = rng.choice(CI_IPS) if rng.random() < 0.6 else rng.choice(user.office_ips)
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
        ip = rng.choice(ROBOT_IPS)
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
        ip = rng.choice(TRAVEL_IPS)
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
        ip = rng.choice(FOREIGN_IPS)
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
                op = OPS_BY_NAME[rng.choice(damage)]
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
    week = Week(
        rng=random.Random(seed),
        project_id=project_id,
        domain={"id": domain_id, "name": domain_name},
        lo=end_ms - WEEK_MS + MINUTE_MS + 1,
        hi=end_ms - SECOND_MS - 1,
    )
    week.cast()
    return week.generate(count)
