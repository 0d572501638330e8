"""Scaffolding for the tests and the benchmarks, shipped so both import one copy.

Everything here runs the real parts: a free TCP port (``ports``), waiting on a condition rather than for a
fixed time (``waiting``), an SMTP server and a webhook receiver on real sockets (``peers``), and an OpenCTS
server in its own process or in the caller's event loop (``server``). Nothing in ``opencts`` imports it.
"""
