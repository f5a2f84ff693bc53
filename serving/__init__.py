"""The serving view (Redis, shared by all workers) and the Prometheus exposition."""
