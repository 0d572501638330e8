"""LTS: log groups and streams that trackers feed, and queries over their records."""
