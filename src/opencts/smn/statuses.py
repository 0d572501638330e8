"""The status values SMN stores: an outbox row's (``smn_deliveries.status``) and a subscription's.

They live apart from the modules that act on them because publishing, subscribing, the delivery worker
and the deliveries API all read or write both, and none of those should import another to name a status.
"""

#: an outbox row's life: due (again) → claimed under a lease → finished one way or the other
PENDING, DELIVERING, DELIVERED, DEAD = "pending", "delivering", "delivered", "dead"

#: a subscription's status, numbered as SMN numbers it on the wire
UNCONFIRMED, CONFIRMED, CANCELLED = 0, 1, 3
