"""The schema as SQLAlchemy Core tables: what the migrations in ``migrations/versions`` build.

Which migration brings which table:

- 0001: ``traces``, ``consumer_cursors``, and IAM's ``domains``, ``projects``, ``users``, ``groups``,
  ``group_members``, ``group_roles``, ``credentials``
- 0002: ``tokens``, ``trackers``, ``resource_tags``, and the catalogue's ``trace_resources``, ``trace_users``
- 0003: SMN's ``smn_topics``, ``smn_subscriptions``, ``smn_messages``, ``smn_deliveries``
- 0004: ``notifications``, ``notification_alarms``
- 0005: the ``traces`` columns ``source_ip``, ``code``, ``request_id``
- 0006: drops the B-tree per filter column on SQLite (the term index answers filters there); these tables
  still declare them, as PostgreSQL has them
- 0007: ``traces.trace_key`` and its unique index, instead of the unique (project_id, trace_id)
- 0008: ``login_failures``
- 0009: the index on ``smn_messages.created_at``
- 0010: ``used_signatures``
- 0011: ``traces.submitter``
- 0012: ``server_keys``
- 0013: ``functions``, ``function_triggers``, ``function_invocations``
- 0014: ``temporary_credentials``
- 0016: ``trace_files``, ``transfer_state`` (and the ``transfer`` row of ``consumer_cursors``)
- 0017: ``signing_keys``, ``ledger_trees``, ``ledger_tiles``, ``ledger_checkpoints``
- 0018: ``digest_chains``, ``digests``
- 0022: ``retention_state``
- 0026: ``archive_verifications``

Apart from 0006's indexes, a database at head has exactly these tables, columns and indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (the fast, monotonic append key).
SeqType = BigInteger().with_variant(Integer(), "sqlite")

#: The columns a ListTraces filter can name: declared here once, the term index and the query parser derive
#: theirs. On PostgreSQL each has a B-tree ``(project_id, kind, col, time, seq)``; migration 0006 drops
#: them on SQLite, where only the term index answers filters.
FILTER_COLUMNS: tuple[str, ...] = (
    "tracker_name",
    "service_type",
    "user_name",
    "resource_id",
    "resource_name",
    "resource_type",
    "trace_name",
    "trace_rating",
    "access_key_id",
    "enterprise_project_id",
)

traces = Table(
    "traces",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # "system" (management) or "data"
    Column("time", BigInteger, nullable=False),
    Column("record_time", BigInteger, nullable=False),
    Column("trace_name", String(64), nullable=False),
    Column("trace_rating", String(16), nullable=False),
    Column("trace_type", String(16), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("resource_type", String(128)),
    Column("resource_id", String(350)),
    Column("resource_name", String(256)),
    Column("user_name", String(256)),
    Column("access_key_id", String(64)),
    Column("tracker_name", String(64), nullable=False),
    Column("enterprise_project_id", String(64)),
    Column("body", LargeBinary, nullable=False),  # the whole normalised trace as JSON
    # not filters: kept beside the body so exports need not parse it
    Column("source_ip", String(64)),
    Column("code", String(256)),
    Column("request_id", String(256)),
    # what keeps trace ids unique per project: 16 bytes of SHA-256 over both (``trace_log.trace_key``),
    # a third of the size of a (project_id, trace_id) entry, so a commit dirties a third as many pages
    Column("trace_key", LargeBinary(16), nullable=False),
    # who posted the trace (opencts.traces.submitter), for the CSV export; NULL before migration 0011
    Column("submitter", String(256)),
)
Index("uq_traces_trace_key", traces.c.trace_key, unique=True)
Index("ix_traces_time", traces.c.project_id, traces.c.kind, traces.c.time, traces.c.seq)
for _col in FILTER_COLUMNS:
    Index(
        f"ix_traces_{_col}", traces.c.project_id, traces.c.kind, traces.c[_col], traces.c.time, traces.c.seq
    )

consumer_cursors = Table(
    "consumer_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("password_hash", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_id", String(32), ForeignKey("domains.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", String(255), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(32), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

group_roles = Table(
    "group_roles",
    metadata,
    Column("group_id", String(32), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(64), primary_key=True),
)

credentials = Table(
    "credentials",
    metadata,
    Column("access_key", String(64), primary_key=True),
    Column("secret_key", String(128), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),  # "active" | "inactive"
    Column("description", String(255), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
)

tokens = Table(
    "tokens",
    metadata,
    Column(
        "token_hash", String(64), primary_key=True
    ),  # SHA-256 of the token; the token itself is never stored
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE")),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

#: failed password logins per subject ("user:<account>:<name>" or "ip:<address>"), for the lockout
login_failures = Table(
    "login_failures",
    metadata,
    Column("subject", String(600), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_at", BigInteger, nullable=False),  # start of the counting window
    Column("last_at", BigInteger, nullable=False),  # the lockout runs from the last failure
)
Index("ix_login_failures_last_at", login_failures.c.last_at)

#: signatures of signed writes already served, until the date check would refuse them anyway: a replay is
#: refused by every process of a deployment, not only by the one that served the original
used_signatures = Table(
    "used_signatures",
    metadata,
    Column("signature", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_used_signatures_expires", used_signatures.c.expires_at)

#: keys shared by every node of a deployment (see ``iam.keyring``): secrets are sealed under the master key
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

trackers = Table(
    "trackers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("tracker_type", String(8), nullable=False),  # "system" | "data"
    Column("status", String(16), nullable=False),  # "enabled" | "disabled" | "error"
    Column("config", Text, nullable=False),  # JSON: the tracker's settings as the API models them
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_trackers_project_name"),
)

resource_tags = Table(
    "resource_tags",
    metadata,
    Column("project_id", String(32), nullable=False),
    Column("resource_type", String(32), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(255), nullable=False),
)

#: (service, resource type) and user names seen in a project's traces, kept by the catalogue consumer so
#: ListTraceResources / ListUserResources never scan the log.
trace_resources = Table(
    "trace_resources",
    metadata,
    Column("project_id", String(32), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("resource_type", String(128), primary_key=True),
    Column("last_seen", BigInteger, nullable=False),
)

trace_users = Table(
    "trace_users",
    metadata,
    Column("project_id", String(32), primary_key=True),
    Column("user_name", String(256), primary_key=True),
    Column("last_seen", BigInteger, nullable=False),
)

# --- SMN v2: topics, subscriptions, messages and the delivery outbox -------------------------------------

smn_topics = Table(
    "smn_topics",
    metadata,
    Column("topic_urn", String(512), primary_key=True),  # urn:smn:<region>:<project_id>:<name>
    Column("topic_id", String(32), nullable=False, unique=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("display_name", String(192), nullable=False),
    Column("push_policy", Integer, nullable=False),
    Column("enterprise_project_id", String(64), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_smn_topics_project_name"),
)

smn_subscriptions = Table(
    "smn_subscriptions",
    metadata,
    Column("subscription_urn", String(560), primary_key=True),  # <topic_urn>:<32 hex>
    Column("topic_urn", String(512), ForeignKey("smn_topics.topic_urn", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("endpoint", String(2048), nullable=False),
    Column("remark", String(128), nullable=False),
    Column("status", Integer, nullable=False),  # 0 unconfirmed, 1 confirmed, 3 cancelled
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of the confirmation token
    Column("extension", Text, nullable=False),  # JSON
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("topic_urn", "protocol", "endpoint", name="uq_smn_subscriptions_endpoint"),
)
Index("ix_smn_subscriptions_project", smn_subscriptions.c.project_id, smn_subscriptions.c.created_at)

smn_messages = Table(
    "smn_messages",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("topic_urn", String(512), ForeignKey("smn_topics.topic_urn", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # "notification" | "confirmation"
    Column("subject", Text),
    Column("message", Text),
    Column("message_structure", Text),  # the JSON string as published
    Column("expires_at", BigInteger, nullable=False),  # created + time_to_live: undelivered by then = dead
    Column("created_at", BigInteger, nullable=False),
)

#: the outbox: one row per (message, subscription), so a message can never be queued twice for one subscriber
smn_deliveries = Table(
    "smn_deliveries",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column(
        "message_id", String(32), ForeignKey("smn_messages.message_id", ondelete="CASCADE"), nullable=False
    ),
    Column(
        "subscription_urn",
        String(560),
        ForeignKey("smn_subscriptions.subscription_urn", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("project_id", String(32), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("endpoint", String(2048), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivering | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # due time; while delivering, the lease end
    Column("expires_at", BigInteger, nullable=False),  # give up (dead) after this; a manual retry extends it
    Column("claim", String(32)),  # which attempt holds the lease; a stale worker cannot overwrite a newer one
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    UniqueConstraint("message_id", "subscription_urn", name="uq_smn_deliveries_message_subscription"),
)
Index("ix_smn_messages_created", smn_messages.c.created_at)
Index("ix_smn_deliveries_due", smn_deliveries.c.status, smn_deliveries.c.next_attempt_at)
Index("ix_smn_deliveries_project", smn_deliveries.c.project_id, smn_deliveries.c.status, smn_deliveries.c.id)

# --- CTS key-event notifications and the alarms they raised -----------------------------------------------

notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("operation_type", String(16), nullable=False),  # complete | customized
    Column("status", String(16), nullable=False),  # enabled | disabled
    Column("notification_type", String(8), nullable=False),  # smn | fun (from the kind of topic_id)
    Column("topic_id", String(512)),  # SMN topic URN or FunctionGraph function URN; None = send nothing
    Column("config", Text, nullable=False),  # JSON: operations, notify_user_list, filter, agency_name
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_notifications_project_name"),
)

#: one row per (notification, trace) that raised an alarm: the record that makes a replayed batch a no-op
notification_alarms = Table(
    "notification_alarms",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("trace_id", String(64), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("message_id", String(32)),  # the SMN message published, when one was
    # published | no_topic | unsendable (SMN); invoked | no_function (CTS triggers)
    Column("outcome", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
Index("ix_notification_alarms_created", notification_alarms.c.created_at)

# --- FunctionGraph functions, their triggers and invocations ----------------------------------------------

functions = Table(
    "functions",
    metadata,
    Column("func_id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("package", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("func_urn", String(256), nullable=False, unique=True),  # without a version: ...:package:name
    Column("runtime", String(32), nullable=False),
    Column("handler", String(128), nullable=False),
    Column("timeout", Integer, nullable=False),  # seconds
    Column("memory_size", Integer, nullable=False),  # MB
    Column("code_type", String(16), nullable=False),  # inline | zip
    Column("code_filename", String(256)),
    Column("code", LargeBinary, nullable=False),  # always a zip archive; inline code is index.py in it
    Column("code_digest", String(128), nullable=False),  # SHA-512 hex of ``code``
    Column("code_size", Integer, nullable=False),
    Column("user_data", Text, nullable=False),  # the environment, as the SDK sends it: a JSON object string
    Column("encrypted_user_data", Text),  # sealed with the master key
    Column("description", Text, nullable=False),
    Column("xrole", String(64)),  # the agency whose credentials the context hands out
    Column("config", Text, nullable=False),  # JSON: every other field of the function object
    Column("created_at", BigInteger, nullable=False),
    Column("last_modified", BigInteger, nullable=False),
    UniqueConstraint("project_id", "package", "name", name="uq_functions_project_package_name"),
)

function_triggers = Table(
    "function_triggers",
    metadata,
    Column("trigger_id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("func_id", String(36), ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False),
    Column("trigger_type_code", String(16), nullable=False),  # CTS, ...
    Column("status", String(16), nullable=False),  # ACTIVE | DISABLED
    Column("event_type_code", String(64)),
    Column("event_data", Text, nullable=False),  # JSON, as the SDK sent it
    Column("notification_id", String(36)),  # a CTS trigger is this key event notification (type fun)
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_function_triggers_func", function_triggers.c.func_id)

#: every invocation (sync, async, trigger): the async queue, the record behind logs and statistics
function_invocations = Table(
    "function_invocations",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("request_id", String(36), nullable=False, unique=True),
    Column("project_id", String(32), nullable=False),
    Column("func_id", String(36), ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False),
    Column("source", String(8), nullable=False),  # sync | async | trigger
    Column("status", String(8), nullable=False),  # WAIT | RUNNING | SUCCESS | FAIL | DISCARD
    Column("event", LargeBinary),  # JSON; kept until the invocation has finished
    Column("trigger_id", String(36)),
    Column("trace_id", String(64)),  # the trace a CTS trigger handed over
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # due time; while RUNNING, the lease end
    Column("claim", String(32)),  # which attempt holds the lease
    Column("result", Text),
    Column("log", Text),  # the handler's log lines, capped
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("duration_ms", Integer),
    Column("created_at", BigInteger, nullable=False),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
)
Index("ix_function_invocations_due", function_invocations.c.status, function_invocations.c.next_attempt_at)
Index("ix_function_invocations_func", function_invocations.c.func_id, function_invocations.c.created_at)

#: short-lived credentials of a function's agency (``iam.temporary``): an AK/SK that needs its security
#: token, and an X-Auth-Token, both valid in one project until ``expires_at``
temporary_credentials = Table(
    "temporary_credentials",
    metadata,
    Column("access_key", String(64), primary_key=True),
    Column("secret_key", Text, nullable=False),  # sealed with the master key
    Column("security_token_hash", String(64), nullable=False),  # SHA-256; the token is never stored
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of the X-Auth-Token
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("func_id", String(36), ForeignKey("functions.func_id", ondelete="CASCADE"), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list of role names
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_temporary_credentials_expires", temporary_credentials.c.expires_at)

# -- archive: the key service (migration 0015) -------------------------------------------------------------

#: a project's KMS keys (customer master keys); the material lives in ``kms_key_versions``
kms_keys = Table(
    "kms_keys",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", String(32), nullable=False),
    Column("key_alias", String(255), nullable=False),
    Column("key_description", Text, nullable=False),
    Column("key_state", String(1), nullable=False),  # KMS's: 2 enabled, 3 disabled
    Column("current_version", Integer, nullable=False),  # the version new data keys are wrapped under
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ux_kms_keys_alias", kms_keys.c.project_id, kms_keys.c.key_alias, unique=True)

#: every version of a key: rotation adds one, none is ever removed (old files name theirs)
kms_key_versions = Table(
    "kms_key_versions",
    metadata,
    Column("key_id", String(36), ForeignKey("kms_keys.key_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("material", Text, nullable=False),  # 32 bytes sealed under the KMS master key
    Column("created_at", BigInteger, nullable=False),
)

# -- archive: trace files and the transfer (migration 0016) -----------------------------------------------

#: every trace file the transfer planned: one row per (tracker, service folder, log range), named at planning;
#: ``status`` planned -> written. A planned row is a leased queue row (``next_attempt_at``, ``claim``).
trace_files = Table(
    "trace_files",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("tracker_id", String(36), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("kind", String(8), nullable=False),  # the traces' kind: system | data
    Column("tracker_name", String(64), nullable=False),
    Column("service", String(64)),  # the service folder; NULL when the tracker does not sort by service
    Column("bucket", String(64), nullable=False),
    Column("object_key", String(1024), nullable=False, unique=True),
    Column("compress", String(8), nullable=False),  # gzip | json
    Column("kms_id", String(128)),  # encrypted under this key when set
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("trace_count", Integer, nullable=False),
    Column("oldest_time", BigInteger, nullable=False),
    Column("newest_time", BigInteger, nullable=False),
    Column("stamp_ms", BigInteger, nullable=False),  # planning time: the folder date and the name's stamp
    Column("status", String(8), nullable=False),  # planned | written
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # due time; while claimed, the lease end
    Column("claim", String(32)),
    Column("sha256", String(64)),  # hex of the object's bytes as stored
    Column("size", BigInteger),
    Column("written_at", BigInteger),
)
Index("ix_trace_files_due", trace_files.c.status, trace_files.c.next_attempt_at)
Index("ix_trace_files_tracker_stamp", trace_files.c.tracker_id, trace_files.c.stamp_ms)

#: each tracker's transfer health: the failure it shows in ListTrackers (``detail``) and since when
transfer_state = Table(
    "transfer_state",
    metadata,
    Column("tracker_id", String(36), primary_key=True),
    Column("detail", String(32)),  # noBucket | bucketPolicyError | kmsKeyDisabled | unavailable; NULL = fine
    Column("message", Text),
    Column("error_since", BigInteger),
    Column("last_success", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

# -- archive: the Merkle ledger and signing keys (migration 0017) ----------------------------------------

#: the installation's Ed25519 keys that sign checkpoints and digests (``archive.signing_keys``): one current
#: (``valid_to`` NULL), the older ones kept so what they signed still verifies
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("fingerprint", String(64), primary_key=True),  # hex SHA-256 of the raw 32-byte public key
    Column("generation", Integer, nullable=False, unique=True),  # 1, 2, ...: two nodes cannot both rotate
    Column("algorithm", String(16), nullable=False),  # Ed25519
    Column("key_name", String(256), nullable=False),  # the signed-note key name the key signs as
    Column("public_key", LargeBinary, nullable=False),  # raw, 32 bytes
    Column("private_key", Text, nullable=False),  # raw 32-byte seed, sealed with the master key
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_to", BigInteger),  # when its successor took over; NULL for the current key
)

#: one row per project with a ledger: the tree's size and root, and the seq of its last leaf. The consumer
#: locks it while appending, so two nodes never append a trace twice.
ledger_trees = Table(
    "ledger_trees",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),  # 32 bytes
    Column("last_seq", BigInteger, nullable=False),  # every trace of the project with seq <= it is a leaf
    Column("updated_at", BigInteger, nullable=False),
)

#: the tree's hashes in tiles of 256 (C2SP tlog-tiles' shape): tile (level L, index N) holds the hashes of
#: nodes N*256 .. N*256+255 at tree height 8*L; a partial tile (the right edge) is rewritten until full.
#: Level-0 tiles also keep their leaves' seqs (8 bytes each, big-endian), to find a trace's leaf index.
ledger_tiles = Table(
    "ledger_tiles",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("tile_index", BigInteger, primary_key=True),
    Column("hashes", LargeBinary, nullable=False),  # 32 bytes per node, up to 256 nodes
    Column("first_seq", BigInteger),  # level 0: seq of its first leaf
    Column("seqs", LargeBinary),  # level 0: seq of each leaf
)
Index("ix_ledger_tiles_seq", ledger_tiles.c.project_id, ledger_tiles.c.level, ledger_tiles.c.first_seq)

#: signed checkpoints (C2SP tlog-checkpoint notes), one per (project, tree size) signed
ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("root", LargeBinary, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("note", Text, nullable=False),
)

# -- archive: hourly digests (migration 0018) ------------------------------------------------------------

#: each tracker's digest chains: one from the hour validation was turned on until the hour it was turned off
#: (``end_ms``, the hour of the final digest; NULL while validating). At most one open chain per tracker.
digest_chains = Table(
    "digest_chains",
    metadata,
    Column("tracker_id", String(36), primary_key=True),
    Column("start_ms", BigInteger, primary_key=True),  # the hour of the starting digest
    Column("project_id", String(32), nullable=False),
    Column("tracker_name", String(64), nullable=False),
    Column("bucket", String(64), nullable=False),
    Column("prefix", String(64)),
    Column("start_size", BigInteger, nullable=False),  # the ledger's size when the chain began
    Column("end_ms", BigInteger),
    Column("done", Integer, nullable=False),  # 1 once the final digest is written
    Column("created_at", BigInteger, nullable=False),
)
Index(
    "ux_digest_chains_open",
    digest_chains.c.tracker_id,
    unique=True,
    sqlite_where=digest_chains.c.end_ms.is_(None),
    postgresql_where=digest_chains.c.end_ms.is_(None),
)

#: one row per (tracker, hour): claimed with the digest's exact bytes and signature, then written. A crash
#: in between leaves the claim, and whoever takes its lease next PUTs the same bytes.
digests = Table(
    "digests",
    metadata,
    Column("tracker_id", String(36), primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),  # start of the hour covered
    Column("chain_start", BigInteger, nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("bucket", String(64), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the digest object's bytes
    Column("sha256", String(64), nullable=False),
    Column("signature", String(128), nullable=False),  # hex
    Column("fingerprint", String(64), nullable=False),
    Column("tree_size", BigInteger),  # the checkpoint's size; NULL without a checkpoint
    Column("leaves_key", String(1024)),
    Column("leaves_first", BigInteger),
    Column("leaves_count", BigInteger),
    Column("digest_end", Integer, nullable=False),
    Column("status", String(8), nullable=False),  # claimed | written
    Column("claim", String(32)),
    Column("lease_until", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("written_at", BigInteger),
)

#: bearer tokens of webhooks that ingest into one project from one named source (``sources.tokens``)
source_tokens = Table(
    "source_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256; the token is never stored
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("source", String(16), nullable=False),  # kubernetes | s3 | generic
    Column("created_by", String(32), nullable=False),  # the user id of who created it
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),  # NULL while it works
    Index("ix_source_tokens_project", "project_id", "name"),
)

#: migration 0022: per tracker, retention deleting traces its archive had not taken yet because they were
#: held longer than ``OPENCTS_ARCHIVE_MAX_HOLD_HOURS`` (``traces.retention_hold``); the row stays, the
#: tracker shows ``archiveHoldExpired`` until its archive is past the deleted range
retention_state = Table(
    "retention_state",
    metadata,
    Column("tracker_id", String(36), primary_key=True),
    Column("expired_from", BigInteger, nullable=False),  # the first seq the archive still needed
    Column("expired_through", BigInteger, nullable=False),  # the last seq retention deleted anyway
    Column("expired_at", BigInteger, nullable=False),
    Column("cleared_at", BigInteger),  # when the archive got past expired_through; NULL while behind
)

#: web console logins (``opencts.console.sessions``): the cookie is never stored, only its SHA-256
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),  # the forms' token, compared in constant time
    Column("method", String(8), nullable=False),  # password | aksk
    Column("access_key", String(64)),  # the key an AK/SK login used
    Column("source_ip", String(64)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),  # idle expiry counts from here
    Index("ix_console_sessions_last_seen", "last_seen_at"),
)
#: LTS log groups (``lts.streams``): ``CTS``, made when a tracker first turns ``is_lts_enabled`` on
lts_groups = Table(
    "lts_groups",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid5 of the project and name: every node agrees
    Column("project_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("ttl_in_days", Integer, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_lts_groups_name"),
)

#: LTS log streams: a tracker's (``system-trace``, or a data tracker's name) in group ``CTS``
lts_streams = Table(
    "lts_streams",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid5 of the group and name
    Column("group_id", String(36), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    UniqueConstraint("group_id", "name", name="uq_lts_streams_name"),
)

#: a stream's log records, one per trace (unique per stream and trace id: a replayed batch adds nothing);
#: ``id`` is the record's line number, in the order the ``lts`` consumer wrote them (the log's order)
lts_records = Table(
    "lts_records",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("stream_id", String(36), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("time", BigInteger, nullable=False),  # the trace's own time (LTS's custom time, a label)
    # when it was written (LTS's collection time): what queries range over and order by, and what
    # retention counts from
    Column("record_time", BigInteger, nullable=False),
    Column("content", Text, nullable=False),  # the trace as JSON, as CTS writes it to LTS
)
Index("uq_lts_records_trace", lts_records.c.stream_id, lts_records.c.trace_id, unique=True)
Index("ix_lts_records_time", lts_records.c.stream_id, lts_records.c.record_time, lts_records.c.id)

# forwarding sinks of LTS streams (opencts.lts.sinks): each a cursor over its stream's records (``position``,
# the last record id done) held by one node at a time under a lease
lts_sinks = Table(
    "lts_sinks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("group_id", String(36), nullable=False),
    Column("stream_id", String(36), nullable=False),
    Column("name", String(64), nullable=False),
    Column("sink_type", String(16), nullable=False),  # ndjson | syslog | otlp
    Column("endpoint", Text, nullable=False),
    Column("settings", Text, nullable=False),  # JSON, nothing secret
    Column("secrets", Text, nullable=True),  # sealed JSON (headers, client key) or NULL
    Column("filter", Text, nullable=False),  # JSON: the key event notification filter model
    Column("position", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),  # failures in a row (the backoff counts from them)
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", BigInteger, nullable=True),
    Column("last_delivered_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("stream_id", "name", name="uq_lts_sinks_name"),
)
Index("ix_lts_sinks_project", lts_sinks.c.project_id, lts_sinks.c.stream_id)
Index("ix_lts_records_stream_id", lts_records.c.stream_id, lts_records.c.id)

#: verifications of a tracker's archive run by the server (``archive.verifications``): asked for by a user
#: ("Verify now") or on a schedule, queued and leased like the other durable queues, and kept with their
#: result, so the console and the API can show the last one and what it found
archive_verifications = Table(
    "archive_verifications",
    metadata,
    Column("id", String(64), primary_key=True),  # scheduled runs: deterministic per tracker and period
    Column("project_id", String(64), nullable=False),
    Column("tracker_id", String(36), nullable=False),
    Column("tracker_name", String(64), nullable=False),
    Column("bucket_name", String(64), nullable=False),
    Column("proofs", Integer, nullable=False),
    Column("requested_by", String(128), nullable=False),  # a user name, or "schedule"
    Column("status", String(12), nullable=False),  # queued | running | verified | failed | error
    Column("claim", String(32)),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),  # due, or the running lease's end
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("digests", BigInteger),
    Column("files", BigInteger),
    Column("traces", BigInteger),
    Column("leaves", BigInteger),
    Column("failure_count", BigInteger),
    Column("note_count", BigInteger),
    Column("findings", Text),  # JSON: the first findings, failures first
    Column("error", Text),  # why it could not run at all (status error)
)
Index(
    "ix_archive_verifications_tracker",
    archive_verifications.c.project_id,
    archive_verifications.c.tracker_id,
    archive_verifications.c.created_at,
)
Index("ix_archive_verifications_due", archive_verifications.c.status, archive_verifications.c.next_attempt_at)
