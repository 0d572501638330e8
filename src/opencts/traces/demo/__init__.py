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

from opencts.traces.demo.catalogue import DEMO_USERS
from opencts.traces.demo.week import demo_week

__all__ = ["DEMO_USERS", "demo_week"]
