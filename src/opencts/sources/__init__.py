"""Where traces come from besides ``POST /v3/{project_id}/traces``: producers that speak their own format.

Each source module maps one foreign audit format to CTS traces and exports ``OPERATIONS`` (service_type ->
resource_type -> trace names), the traces it can produce, which the ListOperations catalogue merges
(``trackers.operations.SOURCE_MODULES``) so key event notifications and triggers can pick them.

- :mod:`opencts.sources.tokens`: source tokens, the bearer tokens webhooks authenticate with
- :mod:`opencts.sources.kubernetes`: Kubernetes ``audit.k8s.io/v1`` ``EventList`` (the audit webhook)
- :mod:`opencts.sources.s3events`: S3-style bucket notifications (MinIO, Ceph) for data trackers
- :mod:`opencts.sources.cadf` and :mod:`opencts.sources.cadf_consumer`: OpenStack CADF events over AMQP
- :mod:`opencts.sources.fields`: what the mappings share (the malformed-item error, times)
"""
