"""A webhook receiver that logs every Alertmanager notification, one JSON line each.

The docker-compose stack's Alertmanager sends here (service ``alert-sink``), so that a
demo shows what would page, ticket or beat, instead of posting to an address where
nothing listens: ``docker compose logs -f alert-sink``. Replace the receivers in
``alertmanager.yml`` with a real pager and ticket system when deploying.

Standard library only: it runs in a plain ``python`` image with this file mounted.
Usage: ``python sink.py [--host 0.0.0.0] [--port 5001]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as exc:
            self.send_error(400, f"not JSON: {exc}")
            return
        if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
            self.send_error(400, "expected an Alertmanager webhook payload (alerts: [...])")
            return
        for alert in body["alerts"]:
            labels = alert.get("labels") or {}
            print(json.dumps({
                "receiver": self.path.rsplit("/", 1)[-1] or body.get("receiver"),
                "status": alert.get("status"),
                "alertname": labels.get("alertname"),
                "severity": labels.get("severity"),
                "labels": labels,
                "summary": (alert.get("annotations") or {}).get("summary"),
                "startsAt": alert.get("startsAt"),
            }, sort_keys=True), flush=True)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        """Health check."""
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        """Only the notifications on stdout; access lines would drown them."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Sink)
    print(f"alert sink listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
