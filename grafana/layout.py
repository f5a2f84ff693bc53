"""Placement of rows and panels on Grafana's 24-column grid, with unique panel ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.dashboard import GridPos

GRID_WIDTH = 24


@dataclass
class Layout:
    """Places panels left to right, in the order they are added; a panel that does not
    fit on the current line starts a new one, and a row always starts its own line.
    Ids are 1, 2, 3... in the same order, rows included."""

    items: list[dashboard.Row | Builder[models.Panel]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0
    next_id: int = 1

    def row(self, title: str) -> None:
        """Start a full-width row header on a new line."""
        self._newline()
        pos = GridPos(h=1, w=GRID_WIDTH, x=0, y=self.y)
        self.items.append(dashboard.Row(title).grid_pos(pos).id(self._id()))
        self.y += 1

    def add(self, panel: Any, w: int, h: int = 8) -> None:
        """Place ``panel`` (``w`` columns by ``h`` grid units) after the previous one.

        ``panel`` is any SDK panel builder (stat, timeseries, bargauge...): they all have
        ``grid_pos`` and ``id``, but no common base class declares them.
        """
        if self.x + w > GRID_WIDTH:
            self._newline()
        self.items.append(panel.grid_pos(GridPos(h=h, w=w, x=self.x, y=self.y)).id(self._id()))
        self.x += w
        self.line_height = max(self.line_height, h)

    def apply(self, board: dashboard.Dashboard) -> dashboard.Dashboard:
        """``board`` with every row and panel added, in placement order."""
        for item in self.items:
            if isinstance(item, dashboard.Row):
                board = board.with_row(item)
            else:
                board = board.with_panel(item)
        return board

    def _newline(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1
