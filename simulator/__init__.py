"""Realistic, reproducible product traffic: the demo's, the soak's and the tests' source."""
