"""FunctionGraph-compatible functions: API, storage, triggers and the isolated runtime that runs them."""
