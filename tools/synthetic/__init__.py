"""Deterministic synthetic inputs for tests and benchmarks: small exported bundles and a synthetic flight bag."""
