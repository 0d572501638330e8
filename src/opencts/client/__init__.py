"""Talking to an OpenCTS server as a client does: shared by the CLI, the tests and the benchmarks."""
