"""Bounded label values: anything not configured becomes ``other``.

This is what keeps a flood of made-up platforms or currencies from turning into a
flood of Prometheus series.
"""

from __future__ import annotations

from leadline.config.definitions import Definitions

OTHER = "other"
ALL = "all"


class LabelSets:
    """The allowed values of each label, from the definitions."""

    def __init__(self, definitions: Definitions) -> None:
        self.platforms = tuple(definitions.labels.platform)
        self.currencies = tuple(definitions.labels.currency)
        self.names = definitions.known_names
        self.plans = tuple(definitions.labels.plan)
        self.features = tuple(definitions.features)
        self._plan = frozenset(self.plans)
        self._feature = frozenset(self.features)
        self.channels = tuple(definitions.marketing.channels)
        self._channel = frozenset(self.channels)
        self._platform = {p.lower(): p for p in self.platforms}
        self._currency = frozenset(self.currencies)

    def platform(self, value: str | None) -> str:
        if value is None:
            return OTHER
        return self._platform.get(value.lower(), OTHER)

    def currency(self, value: str) -> str:
        return value if value in self._currency else OTHER

    def name(self, value: str) -> str:
        return value if value in self.names else OTHER

    def plan(self, value: str) -> str:
        return value if value in self._plan else OTHER

    def feature(self, value: str) -> str | None:
        """Only configured features are counted at all (there is no ``other`` feature)."""
        return value if value in self._feature else None

    def channel(self, value: str | None) -> str:
        """A marketing channel; an absent one is ``other`` too."""
        return value if value in self._channel else OTHER
