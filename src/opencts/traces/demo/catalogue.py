"""The demo week's cast and catalogue: who acts, from where, and which operations exist and how often.

Data only; :mod:`opencts.traces.demo.week` draws the week from it and :mod:`opencts.traces.demo.bodies`
writes each operation's request and response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opencts.clock import HOUR_MS

#: The people (and the robot) who act in the demo week, in the order their ids are drawn from the RNG.
DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "ops-robot")

# Working hours are judged in the region's local time (UTC+8, where CTS's example traces come from).
LOCAL_OFFSET_MS = 8 * HOUR_MS
REGION = "cn-north-4"

Action = Literal["create", "delete", "modify"]

# Office networks (documentation ranges, so they never collide with a real address) and a VPN exit.
OFFICE_IPS = (
    "203.0.113.10",
    "203.0.113.24",
    "203.0.113.37",
    "198.51.100.21",
    "198.51.100.45",
    "192.0.2.5",
    "192.0.2.8",
)
CI_IPS = ("100.85.12.40", "100.85.12.41")
ROBOT_IPS = ("10.0.12.5", "10.0.12.6")
# Addresses nobody in the account has used before: hotels on a trip, and password guessers.
TRAVEL_IPS = ("81.2.69.160", "89.160.20.112")
FOREIGN_IPS = ("185.220.101.34", "45.155.205.99", "91.240.118.172", "2a0b:f4c0:4c:1::7", "5.188.10.76")

# (name, service affinity): how often each person touches each service.
PEOPLE: tuple[tuple[str, dict[str, float]], ...] = (
    ("alice", {"ECS": 5, "VPC": 3, "OBS": 1, "RDS": 1, "CTS": 0.3}),
    ("bob", {"ECS": 1, "VPC": 0.5, "OBS": 5, "RDS": 1, "CTS": 0.2}),
    ("carol", {"ECS": 1, "VPC": 0.5, "OBS": 1, "RDS": 5, "CTS": 0.2}),
    ("dave", {"ECS": 3, "VPC": 4, "OBS": 0.5, "RDS": 0.5, "CTS": 0.2}),
    ("erin", {"ECS": 0.5, "VPC": 2, "OBS": 1, "RDS": 0.5, "CTS": 3}),
)
ROBOT = "ops-robot"


@dataclass(frozen=True)
class Op:
    service: str
    trace_name: str
    resource_type: str
    pool: str
    action: Action
    weight: float
    api_version: str
    success_code: int


OPS: tuple[Op, ...] = (
    Op("ECS", "createServer", "ecs", "server", "create", 3, "v1", 200),
    Op("ECS", "deleteServer", "ecs", "server", "delete", 2.5, "v1", 200),
    Op("ECS", "startServer", "ecs", "server", "modify", 6, "v2.1", 200),
    Op("ECS", "stopServer", "ecs", "server", "modify", 6, "v2.1", 200),
    Op("ECS", "rebootServer", "ecs", "server", "modify", 4, "v2.1", 200),
    Op("ECS", "resizeServer", "ecs", "server", "modify", 1, "v1.1", 200),
    Op("VPC", "createVpc", "vpc", "vpc", "create", 0.7, "v1", 200),
    Op("VPC", "deleteVpc", "vpc", "vpc", "delete", 0.6, "v1", 204),
    Op("VPC", "createSubnet", "subnet", "vpc", "modify", 1, "v1", 200),
    Op("VPC", "createSecurityGroupRule", "securityGroupRule", "sg", "modify", 4, "v3", 201),
    Op("VPC", "deleteSecurityGroupRule", "securityGroupRule", "sg", "modify", 2, "v3", 204),
    Op("OBS", "createBucket", "bucket", "bucket", "create", 2, "v1", 200),
    Op("OBS", "deleteBucket", "bucket", "bucket", "delete", 1.5, "v1", 204),
    Op("OBS", "setBucketPolicy", "bucket", "bucket", "modify", 3, "v1", 204),
    Op("OBS", "setBucketAcl", "bucket", "bucket", "modify", 2, "v1", 200),
    Op("OBS", "setBucketLifecycle", "bucket", "bucket", "modify", 1, "v1", 200),
    Op("RDS", "createInstance", "instance", "rds", "create", 0.8, "v3", 201),
    Op("RDS", "deleteInstance", "instance", "rds", "delete", 0.7, "v3", 200),
    Op("RDS", "resetPassword", "instance", "rds", "modify", 1.5, "v3", 200),
    Op("RDS", "restartInstance", "instance", "rds", "modify", 3, "v3", 200),
    Op("RDS", "createManualBackup", "backup", "rds", "modify", 2, "v3", 201),
    Op("CTS", "createTracker", "tracker", "tracker", "create", 0.4, "v3", 201),
    Op("CTS", "updateTracker", "tracker", "tracker", "modify", 1, "v3", 200),
)
OPS_BY_NAME = {op.trace_name: op for op in OPS}

# (code, weight) of failed calls; the rest succeed.
FAILURES: tuple[tuple[int, float], ...] = ((400, 30), (403, 25), (404, 20), (409, 8), (500, 10), (503, 4))
FAILURE_RATE = 0.05
ERROR_TEXT = {
    400: "Invalid request parameter.",
    403: "You do not have permission to perform this operation.",
    404: "The resource does not exist.",
    409: "The resource is in a state that does not allow this operation.",
    500: "Internal server error. Try again later.",
    503: "Service temporarily unavailable.",
}
BAD_PASSWORD = "The account or password is incorrect."

FLAVORS = ("s6.large.2", "s6.xlarge.2", "c7.2xlarge.2", "m6.large.8")
IMAGES = ("Ubuntu 22.04 server 64bit", "CentOS 7.9 64bit", "Huawei Cloud EulerOS 2.0 64bit")
