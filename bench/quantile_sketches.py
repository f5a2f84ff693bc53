"""``python -m bench.quantile_sketches``: which mergeable quantile sketch (issue 16).

Compares, on seeded latency-like and session-length-like data, the worst relative error
at q = 0.5, 0.9, 0.95, 0.99, the size, and the cost per insert, merge and query of:

- **DDSketch**, through leadline's own path (``aggregators/quantiles.py``): a
  ``bucket_label`` per value, counted in a dict, pieces merged as dict sums, answered by
  ``quantiles()`` (relative accuracy 1 %);
- **KLL** (Apache datasketches ``kll_floats_sketch``), k = 200 (its default) and k = 1000;
- **REQ** (``req_floats_sketch``), k = 12, high-rank accuracy (its default).

How to run (datasketches is not a dependency of leadline, only of this bench)::

    .venv/bin/pip install datasketches==5.2.0     # or: pip install -e '.[bench]'
    .venv/bin/python -m bench.quantile_sketches   # full run: ~1.5 min on 2 busy cores
    .venv/bin/python -m bench.quantile_sketches --quick   # n <= 1e5, 2 seeds, seconds

Without datasketches the KLL and REQ candidates are skipped (with a message) and
DDSketch alone is measured. The exact value of a quantile q over n values is the value
of rank floor(q * (n - 1)) (0-based) of the sorted values, the rank leadline's
``quantiles()`` answers for; KLL and REQ are asked for that same rank (normalized rank
(r + 1) / n, inclusive). The relative error of an answer a is |a - exact| / exact (0 when
both are 0). Scenarios: n = 1e3 .. 1e6 values in one sketch, and ``merge``: n = 1e6
values in 288 five-minute pieces of a diurnal day (sizes follow the traffic), one sketch
per piece, merged. Writes ``bench/results/quantile_sketches.json`` and prints the tables
(markdown) that ``docs/quantiles.md`` quotes. Settings (or the flags):

    QSKETCH_SEEDS        --seeds        seeds per scenario for n <= 1e5 (5)
    QSKETCH_BIG_SEEDS    --big-seeds    seeds per scenario for n = 1e6 and merge (3)
    QSKETCH_MAX_N        --max-n        largest n (1000000); also the merged day's n
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import timeit
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from leadline.aggregators.quantiles import RELATIVE_ACCURACY, bucket_label, quantiles

try:
    import datasketches
except ImportError:  # pragma: no cover - depends on the environment
    datasketches = None

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "quantile_sketches.json"
QS = (0.5, 0.9, 0.95, 0.99)
PIECES = 288  # five-minute buckets of a day
LABEL_BYTES = 10  # a DDSketch bucket kept as a dict label ("-123", "page_load:456") + count
TARGET = 0.02  # issue 16 / SPEC: relative error <= 2 %


# --- data -------------------------------------------------------------------------------


def lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Response times, s: log-normal, median 200 ms, sigma 1, whole milliseconds."""
    return np.round(rng.lognormal(math.log(0.2), 1.0, n), 3)


def bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Response times, s: 95 % fast (median 120 ms, sigma 0.4) and a slow 5 % tail
    (median 2.5 s, sigma 0.5): p95 falls in the gap between the modes."""
    slow = rng.random(n) < 0.05
    fast = rng.lognormal(math.log(0.12), 0.4, n)
    tail = rng.lognormal(math.log(2.5), 0.5, n)
    return np.round(np.where(slow, tail, fast), 3)


def sessions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Session lengths, s: 30 % single-event sessions (0 s), the rest log-normal,
    median 5 min, sigma 1.2, whole milliseconds."""
    zero = rng.random(n) < 0.30
    length = rng.lognormal(math.log(300.0), 1.2, n)
    return np.where(zero, 0.0, np.round(length, 3))


DISTRIBUTIONS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "latency log-normal": lognormal,
    "latency bimodal 5 % slow": bimodal,
    "session length": sessions,
}


def day_pieces(values: np.ndarray, pieces: int = PIECES) -> list[np.ndarray]:
    """``values`` cut into ``pieces`` consecutive five-minute pieces whose sizes follow a
    diurnal curve (night trough ~1/5 of the evening peak)."""
    t = np.arange(pieces) / pieces
    weight = 1.0 + 0.67 * np.sin(2 * math.pi * (t - 0.375))
    cuts = np.round(np.cumsum(weight) / weight.sum() * len(values)).astype(int)
    return np.split(values, cuts[:-1])


# --- candidates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[np.ndarray], Any]
    merge: Callable[[Sequence[Any]], Any]
    answer: Callable[[Any, int], list[float]]  # (state, n) -> one value per q in QS
    size: Callable[[Any], int]  # bytes
    insert_one: Callable[[], Callable[[float], None]]  # a fresh sketch's per-value insert
    insert_batch: Callable[[np.ndarray], None] | None
    takes_back: str


def _dd_build(values: np.ndarray) -> Counter[str]:
    return Counter(map(bucket_label, values.tolist()))


def _dd_merge(parts: Sequence[Counter[str]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:  # leadline's merge over partitions and time buckets: a dict sum
        for label, count in part.items():
            total[label] = total.get(label, 0) + count
    return total


def _dd_answer(counts: dict[str, int], n: int) -> list[float]:
    got = quantiles(counts, QS)
    assert got is not None
    return [got[q] for q in QS]


def _dd_insert_one() -> Callable[[float], None]:
    counts: dict[str, int] = {}

    def insert(value: float) -> None:
        label = bucket_label(value)
        counts[label] = counts.get(label, 0) + 1

    return insert


DDSKETCH = Candidate(
    name=f"DDSketch {RELATIVE_ACCURACY:.0%} (leadline)",
    build=_dd_build, merge=_dd_merge, answer=_dd_answer,
    size=lambda counts: LABEL_BYTES * sum(1 for c in counts.values() if c),
    insert_one=_dd_insert_one, insert_batch=None,
    takes_back="yes, exactly (count - 1)",
)


def _ds_candidate(name: str, make: Callable[[], Any]) -> Candidate:
    def build(values: np.ndarray) -> Any:
        sketch = make()
        sketch.update(values.astype(np.float32))
        return sketch

    def merge(parts: Sequence[Any]) -> Any:
        total = make()
        for part in parts:
            total.merge(part)
        return total

    def answer(sketch: Any, n: int) -> list[float]:
        # The value of 0-based rank r = floor(q (n - 1)): normalized rank (r + 1) / n, inclusive.
        return [float(sketch.get_quantile((math.floor(q * (n - 1)) + 1) / n, True)) for q in QS]

    def insert_one() -> Callable[[float], None]:
        return make().update  # type: ignore[no-any-return]

    def insert_batch(values: np.ndarray) -> None:
        make().update(values)

    return Candidate(name, build, merge, answer, lambda s: len(s.serialize()), insert_one,
                     insert_batch, "no (no delete; compaction drops values at random)")


def candidates() -> list[Candidate]:
    out = [DDSKETCH]
    if datasketches is None:
        print("datasketches is not importable: KLL and REQ are skipped. To compare them:\n"
              "    .venv/bin/pip install datasketches==5.2.0\n", file=sys.stderr)
        return out
    ds = datasketches
    out += [
        _ds_candidate("KLL k=200", lambda: ds.kll_floats_sketch(200)),
        _ds_candidate("KLL k=1000", lambda: ds.kll_floats_sketch(1000)),
        _ds_candidate("REQ k=12 HRA", lambda: ds.req_floats_sketch(12, True)),
    ]
    return out


# --- accuracy -----------------------------------------------------------------------------


def _errors(sorted_values: np.ndarray, answers: list[float]) -> tuple[list[float], list[float]]:
    """Relative error and normalized rank error of each answer, q by q."""
    n = len(sorted_values)
    rel, rank = [], []
    for q, a in zip(QS, answers, strict=True):
        exact = float(sorted_values[math.floor(q * (n - 1))])
        rel.append(0.0 if a == exact else abs(a - exact) / exact if exact else math.inf)
        # How far the answer's rank range is from the asked rank, as a fraction of n.
        lo = np.searchsorted(sorted_values, a, "left")
        hi = np.searchsorted(sorted_values, a, "right") - 1
        want = math.floor(q * (n - 1))
        rank.append(0.0 if lo <= want <= hi else min(abs(lo - want), abs(hi - want)) / n)
    return rel, rank


def accuracy(cands: list[Candidate], sizes: list[int], seeds: int, big_seeds: int,
             max_n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dist, gen in DISTRIBUTIONS.items():
        scenarios = [(n, False) for n in sizes] + [(max_n, True)]
        for n, merged in scenarios:
            started = time.perf_counter()
            acc: dict[str, dict[str, Any]] = {
                c.name: {"rel": [[] for _ in QS], "rank": [[] for _ in QS], "size": []}
                for c in cands}
            for seed in range(seeds if n < max_n else big_seeds):
                rng = np.random.default_rng([seed, n, list(DISTRIBUTIONS).index(dist)])
                values = gen(rng, n)
                exact = np.sort(values)
                for c in cands:
                    if merged:
                        state = c.merge([c.build(p) for p in day_pieces(values)])
                    else:
                        state = c.build(values)
                    if merged and c is DDSKETCH:  # a dict sum is the one-shot sketch itself
                        assert state == dict(c.build(values)), "DDSketch merge is not exact"
                    rel, rank = _errors(exact, c.answer(state, n))
                    for i in range(len(QS)):
                        acc[c.name]["rel"][i].append(rel[i])
                        acc[c.name]["rank"][i].append(rank[i])
                    acc[c.name]["size"].append(c.size(state))
            for c in cands:
                a = acc[c.name]
                rows.append({
                    "distribution": dist, "n": n, "merged": merged, "sketch": c.name,
                    "seeds": len(a["size"]),
                    "worst_rel_error": {str(q): max(a["rel"][i]) for i, q in enumerate(QS)},
                    "worst_rank_error": {str(q): max(a["rank"][i]) for i, q in enumerate(QS)},
                    "bytes": max(a["size"]),
                })
            print(f"  {dist}, n={n:,}{' merged' if merged else ''}: "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return rows


# --- cost ---------------------------------------------------------------------------------


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def cost(cands: list[Candidate], max_n: int) -> list[dict[str, Any]]:
    """Per-value insert (one value per call, as a worker gets events), per-value batch
    insert (numpy array), per-piece merge into a day, and a 4-quantile query of the day."""
    rng = np.random.default_rng(7)
    values = lognormal(rng, max_n)
    sample = values[:20_000].tolist()
    pieces = day_pieces(values)
    rows = []
    for c in cands:
        def one_by_one(c: Candidate = c) -> None:  # timed at once: no late binding
            insert = c.insert_one()
            for v in sample:
                insert(v)

        insert_us = _best(one_by_one) / len(sample) * 1e6
        batch_us = None
        if c.insert_batch is not None:
            arr = values[:200_000].astype(np.float32)
            batch_us = _best(partial(c.insert_batch, arr)) / len(arr) * 1e6
        built = [c.build(p) for p in pieces]
        merge_us = _best(partial(c.merge, built)) / len(built) * 1e6
        day = c.merge(built)
        query_us = _best(partial(c.answer, day, max_n), repeat=20) * 1e6
        rows.append({"sketch": c.name, "insert_us": insert_us, "batch_insert_us": batch_us,
                     "merge_us": merge_us, "query_us": query_us,
                     "piece_bytes_median": int(np.median([c.size(b) for b in built])),
                     "day_bytes": c.size(day), "takes_back": c.takes_back})
    return rows


def take_back_check() -> bool:
    """A session grows from 12 s to 95 s: its old length is taken back, the new one added,
    and the counts equal those of the sessions as they are now."""
    before = Counter(map(bucket_label, [0.0, 3.0, 12.0, 40.0]))
    before[bucket_label(12.0)] -= 1
    before[bucket_label(95.0)] += 1
    after = Counter(map(bucket_label, [0.0, 3.0, 95.0, 40.0]))
    return +before == after and quantiles(before, QS) == quantiles(after, QS)


# --- report -------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2%}" if x < 10 else f"{x:.0%}"


def _worst_rank(rows: list[dict[str, Any]], name: str) -> float:
    return max(max(r["worst_rank_error"].values()) for r in rows
               if r["sketch"] == name and r["merged"])


def tables(rows: list[dict[str, Any]], costs: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(r["sketch"] for r in rows))
    out = []
    for dist in DISTRIBUTIONS:
        out += [f"**{dist}**: worst relative error over seeds at q = 0.5 / 0.9 / 0.95 / 0.99",
                "", "| n | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for r0 in (r for r in rows if r["distribution"] == dist and r["sketch"] == names[0]):
            cells = []
            for name in names:
                r = next(x for x in rows if x["distribution"] == dist and x["n"] == r0["n"]
                         and x["merged"] == r0["merged"] and x["sketch"] == name)
                errs = [r["worst_rel_error"][str(q)] for q in QS]
                text = " / ".join(_pct(e) for e in errs)
                cells.append(f"**{text}**" if max(errs) > TARGET else text)
            label = f"{r0['n']:,}" + (f" in {PIECES} merged pieces" if r0["merged"] else "")
            out.append(f"| {label} ({r0['seeds']} seeds) | " + " | ".join(cells) + " |")
        out.append("")
    out += ["**worst normalized rank error of the answers** (any distribution, q and seed; "
            "the merged day)", "",
            "| " + " | ".join(names) + " |", "|---" * len(names) + "|",
            "| " + " | ".join(f"{_worst_rank(rows, nm):.3%}" for nm in names) + " |", ""]
    out += ["**size, bytes** (largest over seeds)", "",
            "| distribution, n | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for dist in DISTRIBUTIONS:
        for n_merged in sorted({(r["n"], r["merged"]) for r in rows if r["distribution"] == dist}):
            if n_merged[0] < 100_000:
                continue
            by = {r["sketch"]: r["bytes"] for r in rows if r["distribution"] == dist
                  and (r["n"], r["merged"]) == n_merged}
            label = f"{dist}, {n_merged[0]:,}{' merged' if n_merged[1] else ''}"
            out.append(f"| {label} | " + " | ".join(f"{by[nm]:,}" for nm in names) + " |")
    out += ["", "**cost** (log-normal latency; best of 5; a day = 1e6 values in 288 pieces)", "",
            "| sketch | insert, µs/value | batch insert, µs/value | merge, µs/piece | "
            "4 quantiles of the day, µs | piece, B | day, B | take a value back |",
            "|---|---|---|---|---|---|---|---|"]
    for c in costs:
        batch = f"{c['batch_insert_us']:.3f}" if c["batch_insert_us"] is not None else "n/a"
        out.append(f"| {c['sketch']} | {c['insert_us']:.2f} | {batch} | {c['merge_us']:.1f} | "
                   f"{c['query_us']:.0f} | {c['piece_bytes_median']:,} | {c['day_bytes']:,} | "
                   f"{c['takes_back']} |")
    return "\n".join(out)


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="bench.quantile_sketches",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, default=int(env("QSKETCH_SEEDS") or 5))
    p.add_argument("--big-seeds", type=int, default=int(env("QSKETCH_BIG_SEEDS") or 3))
    p.add_argument("--max-n", type=int, default=int(env("QSKETCH_MAX_N") or 1_000_000))
    p.add_argument("--quick", action="store_true", help="n <= 1e5, 2 seeds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.quick:
        args.seeds, args.big_seeds, args.max_n = 2, 2, 100_000
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max_n]
    cands = candidates()
    load = os.getloadavg()
    started = time.perf_counter()
    print(f"load {load[0]:.2f} on {os.cpu_count()} cores; candidates: "
          + ", ".join(c.name for c in cands), file=sys.stderr)
    rows = accuracy(cands, sizes, args.seeds, args.big_seeds, args.max_n)
    costs = cost(cands, args.max_n)
    took = time.perf_counter() - started
    result = {
        "settings": {"seeds": args.seeds, "big_seeds": args.big_seeds, "max_n": args.max_n,
                     "qs": QS, "pieces": PIECES, "relative_accuracy": RELATIVE_ACCURACY},
        "machine": {"cores": os.cpu_count(), "load_before": load, "load_after": os.getloadavg(),
                    "seconds": round(took, 1), "python": sys.version.split()[0],
                    "datasketches": _version("datasketches"), "ddsketch": _version("ddsketch")},
        "take_back_exact": take_back_check(), "accuracy": rows, "cost": costs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(tables(rows, costs))
    print(f"\nDDSketch take-back exact: {result['take_back_exact']}; {took:.0f} s, load "
          f"{load[0]:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
