"""``leadline``: worker, send, demo, demo-traffic, check-config.

Errors a user can fix (bad settings, unreachable broker or Redis, a wrong
definitions file) print one clear message and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from leadline.config.definitions import DefinitionsError, load_definitions
from leadline.config.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


def _fail(message: str, code: int) -> int:
    print(f"leadline: {message}", file=sys.stderr)
    return code


def check_redis(settings: Settings) -> None:
    """Raise ConnectionError naming the URL if Redis does not answer a PING."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConnectionError(
            f"cannot reach Redis at {settings.redis_url} (LEADLINE_REDIS_URL): {exc}"
        ) from None
    finally:
        client.close()


def cmd_worker(args: argparse.Namespace) -> int:
    from leadline.state.local import StoreInUse
    from leadline.streams import allocator
    from leadline.streams.app import create_app
    from leadline.streams.topics import BrokerUnreachable, ensure_topics

    allocator.configure()  # before the big allocations: see streams/allocator.py

    try:
        settings = load_settings()
        definitions = load_definitions(settings.definitions)
    except (SettingsError, DefinitionsError) as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        check_redis(settings)
        asyncio.run(ensure_topics(settings))
    except (ConnectionError, BrokerUnreachable) as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    import gc

    import faust

    # The hot path allocates many short-lived containers per event, so the default
    # gen-0 threshold (700) runs the collector every few events (docs/performance.md).
    # Collect less often, and keep everything alive at start-up out of full collections.
    gc.set_threshold(10_000, 50, 1_000)
    worker = create_app(settings, definitions)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        worker.store.open()  # fails now, not at the first assignment
    except StoreInUse as exc:
        return _fail(str(exc), EXIT_CONFIG)
    raise_open_files_limit()
    gc.freeze()
    faust_worker = faust.Worker(
        worker.app, loglevel=settings.log_level.upper(), quiet=True,
        redirect_stdouts=False, override_logging=True,
    )
    logging.getLogger("leadline").info(
        "leadline worker: /metrics on http://%s:%s/metrics, broker %s, redis %s",
        settings.web_host, settings.web_port, settings.broker_url, settings.redis_url)
    try:
        faust_worker.execute_from_commandline()
    finally:
        worker.store.close()
    return 0


def raise_open_files_limit() -> None:
    """Soft limit of open files up to the hard one: each past hour of event ids of each
    owned partition holds a mapped file (24 a partition at the 24 h horizon), beside
    RocksDB's files and the Kafka sockets; a worker that takes over many partitions
    would reach the usual soft limit of 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_send(args: argparse.Namespace) -> int:
    from leadline.cli.send import send_lines
    from leadline.streams.topics import BrokerUnreachable

    try:
        settings = load_settings()
    except SettingsError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", EXIT_CONFIG)
    try:
        with stream:
            sent = asyncio.run(send_lines(settings, stream, topic=args.topic or settings.topic))
    except BrokerUnreachable as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    print(f"sent {sent} events to {args.topic or settings.topic}", file=sys.stderr)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else None
    try:
        definitions = load_definitions(path)
    except DefinitionsError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    print(f"{path or 'bundled definitions'}: OK ({len(definitions.windows)} windows, "
          f"{len(definitions.funnels)} funnels, {len(definitions.known_names)} event names)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from leadline.cli.demo import run_demo

    return run_demo(rate=args.rate, backfill_days=args.backfill_days)


def cmd_demo_traffic(args: argparse.Namespace) -> int:
    from leadline.cli.traffic import Backfill, run_traffic

    try:
        settings = load_settings()
    except SettingsError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    return asyncio.run(run_traffic(settings, rate=args.rate, seed=args.seed,
                                   backfill=Backfill(args.backfill_days)))


def _backfill_days(text: str) -> int:
    """``--backfill-days``: 0..30 (the worker drops events older than 31 days)."""
    try:
        days = int(text)
    except ValueError:
        days = -1
    if not 0 <= days <= 30:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days in 0..30")
    return days


BACKFILL_HELP = ("days of history (signup cohorts, retention, churn, revenue, marketing "
                 "spend) to send before the live traffic, as fast as the broker takes it: "
                 "0..30, default %(default)s; 0 = none")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run one worker of the pipeline (start more to scale out)"
                   ).set_defaults(func=cmd_worker)
    send = sub.add_parser("send", help="publish events from a JSON-lines file (- = stdin)")
    send.add_argument("file")
    send.add_argument("--topic", help="topic to publish to (default: LEADLINE_TOPIC)")
    send.set_defaults(func=cmd_send)
    demo = sub.add_parser("demo", help="embedded broker + Redis + worker + traffic, live view")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    demo.add_argument("--backfill-days", type=_backfill_days, default=30, metavar="N",
                      help=BACKFILL_HELP)
    demo.set_defaults(func=cmd_demo)
    traffic = sub.add_parser("demo-traffic", help="publish realistic product traffic forever")
    traffic.add_argument("--rate", type=float, default=200.0, help="events per second")
    traffic.add_argument("--seed", type=int, default=7)
    traffic.add_argument("--backfill-days", type=_backfill_days, default=30, metavar="N",
                         help=BACKFILL_HELP)
    traffic.set_defaults(func=cmd_demo_traffic)
    check = sub.add_parser("check-config", help="validate a definitions file")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Before a command configures logging, aiokafka's warnings (a refused SASL mechanism:
    # "Unable connect to ...") would reach logging's last-resort handler and print ahead
    # of leadline's one-line error. Records still propagate to handlers set up later.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)
