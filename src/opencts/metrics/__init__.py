"""Prometheus metrics: the instruments the code moves (``instruments``), what is read from the database at
scrape time (``database``), and how a scrape is answered (``exposition``, ``listener``).

Counters and histograms live in this process (or, with ``PROMETHEUS_MULTIPROC_DIR`` set, in files every
worker process shares); figures that belong to the deployment rather than one process, such as the
consumers' lag and the database's size, are read from the database when scraped, so every process and
every node reports the same value and none of them needs to keep it up to date.
"""
