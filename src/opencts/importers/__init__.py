"""Imports for people moving over: CloudTrail log files and CTS trace files, read into CTS traces."""
