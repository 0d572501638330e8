"""The trace archive: trace files in object storage, their encryption, hourly signed digests, the Merkle
ledger whose checkpoints prove every single trace, the offline verifier and SQL over archived files.

``layout`` names every object; ``storage`` is the one interface to a bucket (a local folder or S3).
"""
