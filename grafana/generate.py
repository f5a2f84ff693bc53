"""Write leadline's Grafana dashboards: ``python -m grafana.generate`` (repository root).

Writes ``grafana/dashboards/*.json``, which are committed and provisioned by
``grafana/provisioning/dashboards/leadline.yaml``. Edit the board modules
(``grafana/boards/``), never the JSON; ``--check`` exits 1 when the committed
JSON differs from what the code and the bundled definitions produce
(tests/observability checks the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.boards import leading_indicators, pipeline_health
from leadline.config.definitions import Definitions, load_definitions

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
COMMAND = "python -m grafana.generate"

BOARDS: dict[str, Callable[[Definitions], dashboard.Dashboard]] = {
    "leading-indicators.json": leading_indicators.build,
    "pipeline-health.json": lambda _defs: pipeline_health.build(),
}


def render_all(defs: Definitions | None = None) -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed (the bundled
    definitions when ``defs`` is None). Keys sorted, so the text is stable."""
    defs = defs or load_definitions()
    return {
        name: json.dumps(build(defs).build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in BOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON is out of date"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)

    rendered = render_all()
    if args.check:
        stale = [n for n, text in rendered.items() if _read(args.out / n) != text]
        for name in stale:
            print(f"{args.out / name} is out of date: run {COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
