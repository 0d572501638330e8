"""FunctionGraph-compatible functions: their API, storage, triggers and the isolated runtime that runs them."""
