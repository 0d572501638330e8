"""What each demo operation sends and gets back: its request, its success response, and whether it is risky.

One function per operation of :data:`~opencts.traces.demo.catalogue.OPS`, looked up by trace name. Each
draws from the week's RNG in a fixed order, so a seed always gives the same bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opencts.traces.demo.catalogue import FLAVORS, IMAGES, REGION, Op

if TYPE_CHECKING:
    from opencts.traces.demo.week import Resource, Week

#: (request, success response or None, risky)
Bodies = tuple[dict[str, Any], dict[str, Any] | None, bool]


def bodies(week: Week, op: Op, r: Resource) -> Bodies:
    """Request and success response of ``op`` on ``r``, and whether the change is risky."""
    job = {"job_id": week.hex32()}  # drawn for every operation, so the RNG's sequence never depends on op
    return BODIES[op.trace_name](week, r, job)


def _create_server(week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    rng = week.rng
    vpc = rng.choice(week.pools["vpc"][0])
    server = {"name": r.name, "flavorRef": rng.choice(FLAVORS), "imageRef": rng.choice(IMAGES)}
    return {"server": {**server, "vpcid": vpc.id, "count": 1}}, {**job, "serverIds": [r.id]}, False


def _delete_server(_week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    return {"servers": [{"id": r.id}], "delete_publicip": True, "delete_volume": True}, job, False


def _start_server(_week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    return {"os-start": {"servers": [{"id": r.id}]}}, job, False


def _stop_server(_week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    return {"os-stop": {"type": "SOFT", "servers": [{"id": r.id}]}}, job, r.critical


def _reboot_server(week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    rng = week.rng
    kind = "HARD" if rng.random() < 0.15 else "SOFT"
    return {"reboot": {"type": kind, "servers": [{"id": r.id}]}}, job, kind == "HARD"


def _resize_server(week: Week, _r: Resource, job: dict[str, str]) -> Bodies:
    rng = week.rng
    return {"resize": {"flavorRef": rng.choice(FLAVORS)}}, job, False


def _create_vpc(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    cidr = f"10.{rng.randint(1, 250)}.0.0/16"
    return {"vpc": {"name": r.name, "cidr": cidr}}, {"vpc": {"id": r.id, "status": "OK"}}, False


def _delete_vpc(_week: Week, _r: Resource, _job: dict[str, str]) -> Bodies:
    return {}, None, False


def _create_subnet(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    n = rng.randint(0, 250)
    subnet = {"name": f"{r.name}-subnet-{n}", "cidr": f"10.20.{n}.0/24", "vpc_id": r.id}
    return {"subnet": subnet}, {"subnet": {"id": week.uuid(), "status": "ACTIVE"}}, False


def _create_security_group_rule(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
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
    rule_id = week.uuid()
    risky = world and port in (22, 3306, 5432)
    response = {"security_group_rule": {"id": rule_id, "security_group_id": r.id}}
    return {"security_group_rule": rule}, response, risky


def _delete_security_group_rule(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    return {"security_group_rule_id": week.uuid(), "security_group_id": r.id}, None, True


def _create_bucket(_week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    return {"bucket": r.name, "location": REGION, "storage_class": "STANDARD"}, None, False


def _delete_bucket(_week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    return {"bucket": r.name}, None, False


def _set_bucket_policy(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    public = rng.random() < 0.25
    principal = ["*"] if public else [f"domain/{week.domain['id']}:user/*"]
    statement = {
        "Sid": "demo",
        "Effect": "Allow",
        "Principal": {"ID": principal},
        "Action": ["GetObject"],
        "Resource": [f"{r.name}/*"],
    }
    return {"bucket": r.name, "policy": {"Statement": [statement]}}, None, public


def _set_bucket_acl(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    grant = rng.choice(("READ", "READ_ACP", "FULL_CONTROL"))
    return {"bucket": r.name, "grants": [{"grantee": "owner", "permission": grant}]}, None, False


def _set_bucket_lifecycle(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    days = rng.choice((30, 90, 180, 365))
    expiry = {"id": f"expire-{days}d", "status": "Enabled", "expiration": {"days": days}}
    return {"bucket": r.name, "rules": [expiry]}, None, False


def _create_instance(_week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    spec = {
        "name": r.name,
        "datastore": {"type": "MySQL", "version": "8.0"},
        "flavor_ref": "rds.mysql.n1.large.2",
        "volume": {"type": "CLOUDSSD", "size": 100},
    }
    return spec, {"instance": {"id": r.id, "name": r.name, "status": "BUILD"}, **job}, False


def _delete_instance(_week: Week, r: Resource, job: dict[str, str]) -> Bodies:
    return {"instance_id": r.id}, job, False


def _reset_password(_week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    return {"instance_id": r.id, "db_user": "root"}, {"resp": "successful"}, True


def _restart_instance(_week: Week, _r: Resource, job: dict[str, str]) -> Bodies:
    return {"restart": {}}, job, False


def _create_manual_backup(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    backup = {"instance_id": r.id, "name": f"manual-{r.name}-{rng.randint(1000, 9999)}"}
    return backup, {"backup": {"id": week.hex32() + "br01", "status": "BUILDING"}}, False


def _create_tracker(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    bucket = week.pools["bucket"][0][2].name
    spec = {"tracker_type": "data", "tracker_name": r.name, "obs_info": {"bucket_name": bucket}}
    return spec, {"id": r.id, "tracker_name": r.name, "status": "enabled"}, False


def _update_tracker(week: Week, r: Resource, _job: dict[str, str]) -> Bodies:
    rng = week.rng
    disable = rng.random() < 0.1
    status = "disabled" if disable else "enabled"
    update: dict[str, Any] = {"tracker_type": "system", "tracker_name": r.name, "status": status}
    return {**update, "is_lts_enabled": True}, None, disable


BODIES: dict[str, Callable[[Week, Resource, dict[str, str]], Bodies]] = {
    "createServer": _create_server,
    "deleteServer": _delete_server,
    "startServer": _start_server,
    "stopServer": _stop_server,
    "rebootServer": _reboot_server,
    "resizeServer": _resize_server,
    "createVpc": _create_vpc,
    "deleteVpc": _delete_vpc,
    "createSubnet": _create_subnet,
    "createSecurityGroupRule": _create_security_group_rule,
    "deleteSecurityGroupRule": _delete_security_group_rule,
    "createBucket": _create_bucket,
    "deleteBucket": _delete_bucket,
    "setBucketPolicy": _set_bucket_policy,
    "setBucketAcl": _set_bucket_acl,
    "setBucketLifecycle": _set_bucket_lifecycle,
    "createInstance": _create_instance,
    "deleteInstance": _delete_instance,
    "resetPassword": _reset_password,
    "restartInstance": _restart_instance,
    "createManualBackup": _create_manual_backup,
    "createTracker": _create_tracker,
    "updateTracker": _update_tracker,
}
