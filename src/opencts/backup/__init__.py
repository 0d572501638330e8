"""Backups of a node's data dir (``opencts backup``) and their restore (``opencts restore``)."""
