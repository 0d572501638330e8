"""Forwarding sinks of LTS streams: syslog (RFC 5424 over TLS), OTLP/HTTP logs and signed HTTP NDJSON."""
