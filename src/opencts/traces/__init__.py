"""Traces: the model, ingest (validate, normalise, append), queries and exports."""
