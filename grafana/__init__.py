"""leadline's Grafana dashboards as code (grafana-foundation-sdk).

Run ``python -m grafana.generate`` from the repository root (``make dashboards``)
to rewrite ``grafana/dashboards/*.json``. This folder is not part of the installed
``leadline`` distribution: it is imported from the repository root only.

The SDK build is pinned to the Grafana image in docker-compose.yml (11.6).
"""
