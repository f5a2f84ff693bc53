"""Reliability tooling: the soak run and helpers shared with the fault tests."""
