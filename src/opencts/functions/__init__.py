"""FunctionGraph functions: storage, the invocation queue, the isolated runtime, and CTS triggers."""
