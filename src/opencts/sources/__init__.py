"""Producers that feed the trace log from other formats: CADF, Kubernetes audit, bucket events."""
