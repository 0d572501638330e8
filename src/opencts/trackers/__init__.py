"""Trackers: management and data trackers, what they let CTS record, quotas, tags and the catalogues.

``model`` validates request bodies, ``store`` keeps trackers and tags, ``recording`` turns a project's
trackers into the yes/no that ingest asks for every trace, ``operations`` is the ListOperations
catalogue and ``catalogue`` the consumer behind ListTraceResources / ListUserResources.
"""
