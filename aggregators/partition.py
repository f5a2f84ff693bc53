"""The aggregated state of one partition: cells keyed by (kind, resolution, bucket start).

``fold`` applies one event in offset order; ``take_dirty`` hands over every cell
changed since the last call, encoded, so a batch writes each cell once.
Each event updates a given cell at most once (one label per kind per event), which is
what lets a single offset stamp per cell decide "already applied".
"""

from __future__ import annotations

from aggregators.buckets import WindowPlan
from aggregators.cells import Cell
from aggregators.labels import LabelSets
from aggregators.money import to_micros
from aggregators.sketch import _Q, _RANK_MASK, HyperLogLog, hash64
from config.definitions import Definitions
from events.model import Event

CellKey = tuple[str, int, int]

# Cell kinds. Distinct kinds hold HyperLogLogs per label, the others integer sums.
USERS = "users"            # distinct active users, by platform
CONVERTERS = "converters"  # distinct users with a conversion event, by platform
EVENTS = "events"          # valid events, by name
REVENUE = "revenue"        # purchase amounts in micro-units, by currency
DISTINCT_KINDS = frozenset({USERS, CONVERTERS})


def key_text(key: CellKey) -> str:
    return f"{key[0]}/{key[1]}/{key[2]}"


def parse_key(text: str) -> CellKey:
    kind, res, start = text.split("/")
    return kind, int(res), int(start)


class PartitionState:
    """Cells of one partition, plus which of them changed since the last flush."""

    def __init__(self, definitions: Definitions) -> None:
        self.plan = WindowPlan(definitions.window_seconds)
        self.labels = LabelSets(definitions)
        self._resolutions = [(r, self.plan.horizon(r)) for r in self.plan.resolutions]
        self._conversion = definitions.events.conversion
        self._purchase = definitions.events.purchase
        self.cells: dict[CellKey, Cell] = {}
        self._dirty: set[CellKey] = set()

    def load(self, key: CellKey, data: bytes) -> None:
        """Restore a cell from its encoded form (changelog recovery)."""
        self.cells[key] = Cell.decode(data)

    def fold(self, offset: int, event: Event, now: float) -> None:
        """Apply one event (at ``offset`` of this partition) to every cell it touches."""
        h = hash64(event.identity)
        idx, rank = h >> _Q, _Q - (h & _RANK_MASK).bit_length() + 1
        platform = self.labels.platform(event.platform)
        name = self.labels.name(event.name)
        converts = event.name == self._conversion
        revenue = None
        if event.name == self._purchase and event.props:
            revenue = (self.labels.currency(event.props["currency"]),
                       to_micros(event.props["amount"]))
        ts = event.ts
        for res, horizon in self._resolutions:
            start = int(ts // res) * res
            if start < now - horizon:
                continue  # no window reaches this bucket any more
            self._register(USERS, res, start, platform, offset, idx, rank)
            self._add(EVENTS, res, start, name, offset, 1)
            if converts:
                self._register(CONVERTERS, res, start, platform, offset, idx, rank)
            if revenue is not None:
                self._add(REVENUE, res, start, revenue[0], offset, revenue[1])

    def _cell(self, key: CellKey, offset: int) -> Cell | None:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        elif cell.offset >= offset:
            return None  # replayed event, already inside this cell
        cell.offset = offset
        self._dirty.add(key)
        return cell

    def _add(self, kind: str, res: int, start: int, label: str, offset: int, amount: int) -> None:
        cell = self._cell((kind, res, start), offset)
        if cell is not None:
            cell.values[label] = cell.values.get(label, 0) + amount

    def _register(
        self, kind: str, res: int, start: int, label: str, offset: int, idx: int, rank: int
    ) -> None:
        cell = self._cell((kind, res, start), offset)
        if cell is not None:
            hll = cell.values.get(label)
            if hll is None:
                hll = cell.values[label] = HyperLogLog()
            if hll.registers[idx] < rank:
                hll.registers[idx] = rank

    def take_dirty(self) -> dict[CellKey, tuple[int, bytes]]:
        """Cells changed since the last call: key -> (offset stamp, encoded cell)."""
        out = {}
        for key in self._dirty:
            cell = self.cells[key]
            out[key] = (cell.offset, cell.encode())
        self._dirty.clear()
        return out

    def expired(self, now: float) -> list[CellKey]:
        """Remove and return the cells no window can reach any more."""
        gone = [k for k in self.cells if self.plan.is_expired(k[1], k[2], now)]
        for key in gone:
            del self.cells[key]
            self._dirty.discard(key)
        return gone

    def encoded(self) -> dict[CellKey, tuple[int, bytes]]:
        """Every cell as (offset stamp, encoded cell), to rebuild the serving view."""
        return {key: (cell.offset, cell.encode()) for key, cell in self.cells.items()}
