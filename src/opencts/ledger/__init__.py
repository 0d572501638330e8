"""The Merkle ledger: per project, traces in log order as leaves of an RFC 9162 tree; signed checkpoints."""
