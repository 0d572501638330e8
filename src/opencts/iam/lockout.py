"""Login lockout: too many wrong passwords for one user name, or from one address, and logins stop a while.

Argon2 makes each guess slow, but not slow enough on its own: a script that tries a list of passwords
against the admin would get through thousands a day. As Huawei IAM's account lockout does, after
``max_failures`` wrong passwords within ``window`` a user name is refused for ``lockout`` from the last
failure, without its password being checked (so the right password does not help an attacker either).
A single address that sprays many names is stopped the same way at ``max_failures_per_ip``.

Unknown user names are counted and locked exactly like real ones, so the lockout says nothing about which
names exist. An account is keyed by its id whether the caller named it by id or by name, so switching
between the two does not double the guesses. A successful login clears the user name's count (not the
address's). The counts live in the database, so every process of a deployment shares them.

The trade-off is the usual one: someone who knows a user name can keep that user locked out. The audit
trail shows who did (each refused attempt is a ``login`` trace with its source address).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, text

from opencts.store.tables import login_failures

_RECORD = text(
    "INSERT INTO login_failures (subject, failures, first_at, last_at) VALUES (:subject, 1, :now, :now)"
    " ON CONFLICT (subject) DO UPDATE SET"
    " failures = CASE WHEN login_failures.first_at < :window_start THEN 1"
    " ELSE login_failures.failures + 1 END,"
    " first_at = CASE WHEN login_failures.first_at < :window_start THEN :now"
    " ELSE login_failures.first_at END,"
    " last_at = :now"
)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int = 5
    max_failures_per_ip: int = 25
    window_ms: int = 15 * 60_000
    lockout_ms: int = 15 * 60_000


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying: the user name as keyed for counting, and the address it comes from."""

    user: str
    ip: str | None

    @classmethod
    def of(cls, account: str, name: str, ip: str | None) -> Attempt:
        return cls(user=f"user:{account}:{name}", ip=f"ip:{ip}" if ip else None)

    def limits(self, policy: LockoutPolicy) -> dict[str, int]:
        found = {self.user: policy.max_failures}
        if self.ip is not None:
            found[self.ip] = policy.max_failures_per_ip
        return found


def locked_for(conn: Connection, attempt: Attempt, policy: LockoutPolicy, *, now: int) -> int:
    """Milliseconds until ``attempt`` may try again; 0 when it may now."""
    limits = attempt.limits(policy)
    rows = conn.execute(
        select(login_failures.c.subject, login_failures.c.failures, login_failures.c.last_at).where(
            login_failures.c.subject.in_(list(limits))
        )
    ).all()
    waits = [
        last_at + policy.lockout_ms - now
        for subject, failures, last_at in rows
        if failures >= limits[subject]
    ]
    return int(max([0, *waits]))


def record_failure(conn: Connection, attempt: Attempt, policy: LockoutPolicy, *, now: int) -> None:
    """Count one wrong password against the user name and the address; forget counts long over."""
    window_start = now - policy.window_ms
    for subject in attempt.limits(policy):
        conn.execute(_RECORD, {"subject": subject, "now": now, "window_start": window_start})
    stale = now - max(policy.window_ms, policy.lockout_ms)
    conn.execute(delete(login_failures).where(login_failures.c.last_at < stale))


def clear(conn: Connection, attempt: Attempt) -> None:
    """A login succeeded: the user name's count starts over (the address's stays, as a sprayer's would)."""
    conn.execute(delete(login_failures).where(login_failures.c.subject == attempt.user))
