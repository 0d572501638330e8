"""Realistic traces for the benchmarks: a seeded account (``Universe``) and a ``TraceFactory`` that draws
what producers POST and what the server stores for it, fast enough for ten million rows."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.store.trace_log import TraceRow

_FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor",
)  # fmt: skip
_ROBOTS = ("ops-robot", "ci-deployer")

# service -> (weight, [(trace_name, resource_type, read_only, api_version, weight)])
_SERVICES: dict[str, tuple[float, tuple[tuple[str, str, bool, str, float], ...]]] = {
    "ECS": (30, (("createServer", "ecs", False, "v1", 3), ("deleteServer", "ecs", False, "v1", 2),
                 ("startServer", "ecs", False, "v2.1", 6), ("stopServer", "ecs", False, "v2.1", 6),
                 ("rebootServer", "ecs", False, "v2.1", 4), ("resizeServer", "ecs", False, "v1.1", 1))),
    "VPC": (15, (("createVpc", "vpc", False, "v1", 1), ("deleteVpc", "vpc", False, "v1", 1),
                 ("createSubnet", "subnet", False, "v1", 2),
                 ("createSecurityGroupRule", "securityGroupRule", False, "v3", 4),
                 ("deleteSecurityGroupRule", "securityGroupRule", False, "v3", 2))),
    "OBS": (15, (("createBucket", "bucket", False, "v1", 2), ("deleteBucket", "bucket", False, "v1", 1),
                 ("setBucketPolicy", "bucket", False, "v1", 3), ("setBucketAcl", "bucket", False, "v1", 2),
                 ("setBucketLifecycle", "bucket", False, "v1", 1))),
    "RDS": (10, (("createInstance", "instance", False, "v3", 1),
                 ("deleteInstance", "instance", False, "v3", 1),
                 ("resetPassword", "instance", False, "v3", 2),
                 ("restartInstance", "instance", False, "v3", 3),
                 ("createManualBackup", "backup", False, "v3", 2))),
    "IAM": (12, (("login", "user", False, "v3", 8), ("logout", "user", False, "v3", 5),
                 ("createUser", "user", False, "v3", 1), ("updateUser", "user", False, "v3", 1),
                 ("createCredential", "credential", False, "v3", 1))),
    "CTS": (4, (("createTracker", "tracker", False, "v3", 1), ("updateTracker", "tracker", False, "v3", 2),
                ("deleteTracker", "tracker", False, "v3", 0.5), ("listTraces", "trace", True, "v3", 6))),
    "ELB": (8, (("createLoadBalancer", "loadbalancer", False, "v3", 1),
                ("deleteLoadBalancer", "loadbalancer", False, "v3", 1),
                ("createListener", "listener", False, "v3", 2), ("updateMember", "member", False, "v3", 4),
                ("createPool", "pool", False, "v3", 1))),
    "EVS": (6, (("createVolume", "volume", False, "v2", 2), ("deleteVolume", "volume", False, "v2", 1),
                ("attachVolume", "volume", False, "v2", 3), ("detachVolume", "volume", False, "v2", 2),
                ("extendVolume", "volume", False, "v2", 1), ("createSnapshot", "snapshot", False, "v2", 2))),
}  # fmt: skip
_DATA_OPS = (("PUT.OBJECT", "ObsAPI", 5), ("GET.OBJECT", "ObsSDK", 8), ("DELETE.OBJECT", "ObsAPI", 1),
             ("HEAD.OBJECT", "ObsSDK", 2))  # fmt: skip
_RESOURCE_PREFIX = {
    "ECS": ("web", "api", "batch", "db-proxy", "bastion"),
    "VPC": ("vpc-core", "vpc-dmz", "sg-web", "subnet-app"),
    "OBS": ("logs", "backups", "assets", "reports"), "RDS": ("rds-orders", "rds-users", "rds-billing"),
    "IAM": ("user", "agency"), "CTS": ("system", "audit"), "ELB": ("elb-public", "elb-internal"),
    "EVS": ("vol-data", "vol-log", "vol-sys"),
}  # fmt: skip
_ENVS = ("prod", "staging", "dev", "test")
_FAILURE = {
    "warning": ((400, "Invalid request parameter."),
                (403, "You do not have permission to perform this operation."),
                (404, "The resource does not exist."),
                (409, "The resource is in a state that forbids this.")),
    "incident": ((500, "Internal server error. Try again later."), (503, "Service temporarily unavailable.")),
}  # fmt: skip
_CHANGES = ("create", "delete", "set", "update", "reset", "resize", "extend")
_DATA_TRACKERS = ("obs-audit", "obs-finance", "obs-ml-data")
_REGION = "cn-north-4"


def _ak(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))


@dataclass(frozen=True)
class Resource:
    service: str
    type: str
    id: str
    name: str


@dataclass(frozen=True)
class User:
    name: str
    id: str
    access_key_id: str | None
    ips: tuple[str, ...]
    #: cumulative weights over services, this user's affinity
    service_weights: tuple[float, ...]


class Universe:
    """The value domains of one account, drawn from a seed.

    ~20 users (a few with access keys), 8 services, ~45 trace names, ~2,000 resources, ratings 90/8/2 %,
    4 enterprise projects, 3 data trackers (10 % of traces are OBS data events) plus ``system``.
    """

    def __init__(self, *, domain_id: str, domain_name: str, seed: int = 7, resources: int = 2000) -> None:
        rng = random.Random(seed)
        self.domain = {"id": domain_id, "name": domain_name}
        self.services = tuple(_SERVICES)
        self.enterprise_projects = ("0", *(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3)))
        self.data_trackers = _DATA_TRACKERS
        users = []
        names = (*_FIRST_NAMES, *_ROBOTS)
        for index, name in enumerate(names):
            has_ak = name in _ROBOTS or index % 3 == 0  # 8 of 20 users call APIs with an access key
            weights = [(_SERVICES[s][0] * rng.uniform(0.2, 3.0)) for s in self.services]
            cumulative = []
            total = 0.0
            for w in weights:
                total += w
                cumulative.append(total)
            ips = tuple(f"{rng.choice((203, 198, 192))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                        f"{rng.randint(1, 254)}" for _ in range(rng.randint(1, 3)))  # fmt: skip
            users.append(User(name, f"{rng.getrandbits(128):032x}", _ak(rng) if has_ak else None, ips,
                              tuple(cumulative)))  # fmt: skip
        self.users = tuple(users)
        self.user_weights = tuple(0.3 if u.name in _ROBOTS else 1.0 for u in users)
        # Resources: each service gets a share of ~2,000, per resource type it has.
        by_service: dict[str, list[Resource]] = {}
        total_weight = sum(w for w, _ in _SERVICES.values())
        for service, (weight, ops) in _SERVICES.items():
            types = sorted({op[1] for op in ops})
            count = max(len(types), round(resources * weight / total_weight))
            pool: list[Resource] = []
            for i in range(count):
                rtype = types[i % len(types)]
                prefix = rng.choice(_RESOURCE_PREFIX[service])
                name = f"{prefix}-{rng.choice(_ENVS)}-{i:04d}"
                pool.append(Resource(service, rtype, str(uuid.UUID(int=rng.getrandbits(128))), name))
            by_service[service] = pool
        self.resources_by_service = by_service
        self.ops_by_service = {s: ops for s, (_, ops) in _SERVICES.items()}
        self.buckets = tuple(r for r in by_service["OBS"] if r.type == "bucket")

    @property
    def resources(self) -> list[Resource]:
        return [r for pool in self.resources_by_service.values() for r in pool]

    @property
    def trace_names(self) -> list[str]:
        return [op[0] for ops in self.ops_by_service.values() for op in ops]

    @property
    def resource_types(self) -> list[str]:
        return sorted({op[1] for ops in self.ops_by_service.values() for op in ops})

    @property
    def access_keys(self) -> list[str]:
        return [u.access_key_id for u in self.users if u.access_key_id]


class TraceFactory:
    """Realistic traces: ``input_trace`` is what a producer POSTs; ``stored_row`` is what the server stores.

    ``stored_row`` builds the body the way :func:`opencts.traces.model.normalise` does (checked against it in
    :func:`self_check`), but fast enough for ten million rows.
    """

    def __init__(
        self, universe: Universe, project_id: str, *, seed: int = 11, data_share: float = 0.10
    ) -> None:
        self.u = universe
        self.project_id = project_id
        self.rng = random.Random(seed)
        self.data_share = data_share
        self._ops = {
            s: (list(ops), [sum(op[4] for op in ops[: i + 1]) for i in range(len(ops))])
            for s, ops in universe.ops_by_service.items()
        }
        self._data_cum = [sum(op[2] for op in _DATA_OPS[: i + 1]) for i in range(len(_DATA_OPS))]
        self._user_cum = [sum(universe.user_weights[: i + 1]) for i in range(len(universe.users))]

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _rating(self) -> str:
        r = self.rng.random()
        return "normal" if r < 0.90 else "warning" if r < 0.98 else "incident"

    def input_trace(self, time_ms: int) -> dict[str, Any]:
        """One trace in the producer's form (request/response as objects, code as a number)."""
        user = self.rng.choices(self.u.users, cum_weights=self._user_cum)[0]
        rating = self._rating()
        if self.rng.random() < self.data_share:
            return self._data_trace(time_ms, user, rating)
        return self._management_trace(time_ms, user, rating)

    def _data_trace(self, time_ms: int, user: User, rating: str) -> dict[str, Any]:
        """An OBS object operation, recorded by one of the data trackers."""
        rng = self.rng
        user_info: dict[str, Any] = {"name": user.name, "domain": self.u.domain}
        name, trace_type, _ = rng.choices(_DATA_OPS, cum_weights=self._data_cum)[0]
        bucket = rng.choice(self.u.buckets)
        key = f"{rng.choice(('raw', 'daily', 'img', 'exports'))}/{rng.getrandbits(40):010x}.dat"
        if user.access_key_id:
            user_info["access_key_id"] = user.access_key_id
        return {
            "trace_id": self._uuid(),
            "trace_name": name,
            "trace_rating": rating,
            "trace_type": trace_type,
            "time": time_ms,
            "user": user_info,
            "code": 200 if rating == "normal" else 403,
            "service_type": "OBS",
            "resource_type": "object",
            "resource_id": f"{bucket.name}/{key}",
            "resource_name": key,
            "source_ip": rng.choice(user.ips),
            "request_id": self._uuid(),
            "enterprise_project_id": "0",
            "read_only": name in ("GET.OBJECT", "HEAD.OBJECT"),
            "tracker_name": rng.choice(self.u.data_trackers),
        }

    def _management_trace(self, time_ms: int, user: User, rating: str) -> dict[str, Any]:
        """A management operation on one of the account's resources, by console or API."""
        rng = self.rng
        service = rng.choices(self.u.services, cum_weights=user.service_weights)[0]
        ops, cum = self._ops[service]
        name, rtype, read_only, api_version, _ = rng.choices(ops, cum_weights=cum)[0]
        pool = self.u.resources_by_service[service]
        resource = pool[int(len(pool) * rng.random() ** 1.6)]  # some resources are much busier than others
        api_call = bool(user.access_key_id) and rng.random() < 0.7
        by_console = not api_call or name in ("login", "logout")
        user_info: dict[str, Any] = {"name": user.name, "domain": self.u.domain}
        if not by_console:
            user_info["access_key_id"] = user.access_key_id
        if rating == "normal":
            code, message = (201 if name.startswith("create") else 200), None
        else:
            code, message = rng.choice(_FAILURE[rating])
        trace: dict[str, Any] = {
            "trace_id": self._uuid(),
            "trace_name": name,
            "trace_rating": rating,
            "trace_type": "ConsoleAction" if by_console else "ApiCall",
            "time": time_ms,
            "user": user_info,
            "code": code,
            "api_version": api_version,
            "service_type": service,
            "resource_type": rtype if name not in ("login", "logout") else "user",
            "resource_id": resource.id,
            "resource_name": resource.name,
            "source_ip": rng.choice(user.ips),
            "enterprise_project_id": rng.choices(self.u.enterprise_projects, cum_weights=(7, 8, 9, 10))[0],
            "read_only": read_only,
        }
        if not by_console:
            trace["request_id"] = self._uuid()
        # Only changes carry the audited request body; failures and creations carry a response.
        if name.startswith(_CHANGES):
            trace["request"] = {"name": resource.name}
        if rating != "normal":
            trace["response"] = {"error_code": f"{service}.{code}"}
        elif name.startswith("create"):
            trace["response"] = {"id": resource.id}
        if message is not None:
            trace["message"] = message
        return trace

    def stored_row(self, time_ms: int, record_time: int) -> TraceRow:
        """A stored row, body in the server's normalised form."""
        body = self.input_trace(time_ms)
        return self.to_row(body, record_time)

    def to_row(self, body: dict[str, Any], record_time: int) -> TraceRow:
        """Normalise an input trace in place, like the server, and return its stored row."""
        dumps = orjson.dumps
        if "request" in body:
            body["request"] = dumps(body["request"]).decode()
        if "response" in body:
            body["response"] = dumps(body["response"]).decode()
        body["code"] = str(body["code"])
        kind = "data" if body["trace_type"] in ("ObsAPI", "ObsSDK") else "system"
        tracker = body.pop("tracker_name", None) or "system"
        body["event_type"] = kind
        body["project_id"] = self.project_id
        body["tracker_name"] = tracker
        body["record_time"] = record_time
        user = body["user"]
        return TraceRow(
            project_id=self.project_id,
            trace_id=body["trace_id"],
            kind=kind,
            time=body["time"],
            record_time=record_time,
            trace_name=body["trace_name"],
            trace_rating=body["trace_rating"],
            trace_type=body["trace_type"],
            service_type=body["service_type"],
            resource_type=body.get("resource_type"),
            resource_id=body.get("resource_id"),
            resource_name=body.get("resource_name"),
            user_name=user["name"],
            access_key_id=user.get("access_key_id"),
            tracker_name=tracker,
            enterprise_project_id=body.get("enterprise_project_id"),
            body=dumps(body),
            source_ip=body.get("source_ip"),
            code=body["code"],
            request_id=body.get("request_id"),
        )


def self_check(factory: TraceFactory, samples: int = 200) -> None:
    """Prove ``stored_row`` gives what the server's own ingest code would store for the same input."""
    from opencts.traces.ingest import prepare

    now = now_ms()
    inputs = [factory.input_trace(now - factory.rng.randrange(HOUR_MS)) for _ in range(samples)]
    expected = prepare(orjson.loads(orjson.dumps(inputs)), project_id=factory.project_id, now=now,
                       retention_ms=7 * DAY_MS)  # fmt: skip
    if len(expected.rows) != samples:
        bad = [r for r in expected.results if r.status != "accepted"]
        raise AssertionError(f"the server would not accept generated traces: {bad[:3]}")
    for item, want in zip(inputs, expected.rows, strict=True):
        got = factory.to_row(dict(item), now)
        same_columns = got._replace(body=b"") == want._replace(body=b"")
        if not same_columns or orjson.loads(got.body) != orjson.loads(want.body):
            raise AssertionError(f"generated row differs from the server's:\n{got}\n{want}")


def encode_batch(traces: Sequence[dict[str, Any]]) -> bytes:
    return orjson.dumps({"traces": list(traces)})
