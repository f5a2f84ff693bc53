"""The declarative metric definitions (`config/leadline.yaml`), validated.

A team adapts leadline to its product by editing this file, not code. Every
label value leadline exports comes from a bounded set declared here.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUNDLED = Path(__file__).with_name("leadline.yaml")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
#: The longest event name a message may carry (SPEC section 1).
MAX_EVENT_NAME = 128
LABEL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RESERVED_LABELS = ("all", "other")


class DefinitionsError(ValueError):
    """The definitions file is wrong; the message names file, line and field."""


def parse_duration(text: str) -> int:
    """``"5m"`` -> 300. Whole seconds, units s/m/h/d, greater than zero."""
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _event_name(value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(f"{value!r} is not an event name (1..64 of [A-Za-z0-9_.:-])")
    return value


def is_event_name(value: object) -> bool:
    """What SPEC section 1 accepts in a message: 1..128 printable characters (spaces too)."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_EVENT_NAME and value.isprintable()


def _label_values(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for v in values:
        if not LABEL_RE.match(v):
            raise ValueError(f"{v!r} is not a label value (1..64 of [A-Za-z0-9_.-])")
        if v in RESERVED_LABELS:
            raise ValueError(f"{v!r} is reserved: leadline adds it itself")
        if v in seen:
            raise ValueError(f"{v!r} is listed twice")
        seen.add(v)
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventNames(_Strict):
    signup: str = "signup"
    activation: str = "activation"
    session: str = "session_start"
    conversion: str = "purchase"
    purchase: str = "purchase"
    refund: str = "refund"
    feature: str = "feature_used"
    subscription_started: str = "subscription_started"
    subscription_changed: str = "subscription_changed"
    subscription_cancelled: str = "subscription_cancelled"
    #: Marketing spend (properties.amount, currency, optional channel): needs no identity.
    marketing_spend: str = "marketing_spend"
    known: list[str] = Field(default_factory=list)
    #: Configured name -> other names counted as it (Segment's "Order Completed"...).
    aliases: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator(
        "signup", "activation", "session", "conversion", "purchase", "refund", "feature",
        "subscription_started", "subscription_changed", "subscription_cancelled",
        "marketing_spend",
    )
    @classmethod
    def _name(cls, v: str) -> str:
        return _event_name(v)

    @field_validator("known")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            _event_name(name)
        if "other" in v:
            raise ValueError("'other' is reserved for names not listed here")
        return list(dict.fromkeys(v))

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, names in v.items():
            _event_name(name)
            for alias in names:
                if not is_event_name(alias):
                    raise ValueError(f"{alias!r} is not an event name as messages carry it "
                                     f"(1..{MAX_EVENT_NAME} printable characters)")
        return v


class Activation(_Strict):
    within: str = "7d"

    @field_validator("within")
    @classmethod
    def _within(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def within_seconds(self) -> int:
        return parse_duration(self.within)


class Funnel(_Strict):
    steps: list[str] = Field(min_length=2, max_length=20)
    within: str = "1h"

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        for name in v:
            _event_name(name)
        if len(set(v)) != len(v):
            raise ValueError("a funnel step may appear only once")
        return v

    @field_validator("within")
    @classmethod
    def _within(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def within_seconds(self) -> int:
        return parse_duration(self.within)


class Survey(_Strict):
    event: str
    min: int
    max: int

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        return _event_name(v)

    @model_validator(mode="after")
    def _range(self) -> Survey:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Retention(_Strict):
    """Day-N retention (SPEC 3b): one ``day`` label value per N."""

    days: list[int] = Field(default_factory=lambda: [1, 7, 28], min_length=1, max_length=10)
    #: A user's first-seen time is kept this long after their last event: one who comes
    #: back later is new again.
    forget_after: str = "400d"

    @field_validator("forget_after")
    @classmethod
    def _forget_after(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def forget_after_seconds(self) -> int:
        return parse_duration(self.forget_after)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        for n in v:
            if not 1 <= n <= 365:
                raise ValueError(f"retention day {n} is outside 1..365")
        if len(set(v)) != len(v):
            raise ValueError("a retention day is listed twice")
        return sorted(v)


def _durations(v: list[str]) -> list[str]:
    for w in v:
        parse_duration(w)
    if len(set(v)) != len(v):
        raise ValueError("a window is listed twice")
    return v


class Churn(_Strict):
    """product_user_churn_ratio{window}: each window is compared with the one before it."""

    windows: list[str] = Field(default_factory=lambda: ["24h", "7d"], max_length=5)

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        return _durations(v)


class RevenueRetention(_Strict):
    """product_net_revenue_retention_ratio{window,currency}."""

    windows: list[str] = Field(default_factory=lambda: ["7d", "30d"], max_length=5)

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        return _durations(v)


class Marketing(_Strict):
    """The ``channel`` label values of product_marketing_spend (others: ``other``)."""

    channels: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return _label_values(v)


class Performance(_Strict):
    """Technical performance (SPEC 3b): the events that carry ``properties.duration_ms``
    (and optionally ``status`` and ``error``), and the crash event."""

    events: list[str] = Field(default_factory=lambda: ["page_load", "api_request"],
                              max_length=20)
    crash: str = "app_crash"

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        for name in v:
            _event_name(name)
        if len(set(v)) != len(v):
            raise ValueError("an event is listed twice")
        return v

    @field_validator("crash")
    @classmethod
    def _crash(cls, v: str) -> str:
        return _event_name(v)


class Labels(_Strict):
    platform: list[str] = Field(default_factory=lambda: ["web", "ios", "android"], max_length=50)
    currency: list[str] = Field(default_factory=lambda: ["USD", "EUR"], max_length=50)
    plan: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("platform", "plan")
    @classmethod
    def _values(cls, v: list[str]) -> list[str]:
        return _label_values(v)

    @field_validator("currency")
    @classmethod
    def _currencies(cls, v: list[str]) -> list[str]:
        for c in v:
            if not re.fullmatch(r"[A-Z]{3}", c):
                raise ValueError(f"{c!r} is not an ISO 4217 code (three capital letters)")
        return _label_values(v)


class Definitions(_Strict):
    """What the events mean. See ``config/leadline.yaml`` for the annotated default."""

    windows: list[str] = Field(default_factory=lambda: ["5m", "1h", "24h", "7d", "30d"],
                               min_length=1, max_length=10)
    events: EventNames = Field(default_factory=EventNames)
    activation: Activation = Field(default_factory=Activation)
    funnels: dict[str, Funnel] = Field(default_factory=dict, max_length=20)
    surveys: dict[str, Survey] = Field(default_factory=dict, max_length=10)
    features: list[str] = Field(default_factory=list, max_length=100)
    labels: Labels = Field(default_factory=Labels)
    retention: Retention = Field(default_factory=Retention)
    churn: Churn = Field(default_factory=Churn)
    revenue_retention: RevenueRetention = Field(default_factory=RevenueRetention)
    marketing: Marketing = Field(default_factory=Marketing)
    performance: Performance = Field(default_factory=Performance)

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        seconds = [parse_duration(w) for w in v]
        if len(set(seconds)) != len(seconds):
            raise ValueError("two windows have the same length")
        if max(seconds) > 400 * 86400:
            raise ValueError("the longest window may be at most 400d")
        return v

    @field_validator("funnels", "surveys")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            _label_values([name])
        return v

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[str]) -> list[str]:
        return _label_values(v)

    def semantic_errors(self) -> list[tuple[tuple[str, ...], str]]:
        """Rules across fields, as (location, message): empty when the definitions hold."""
        errors: list[tuple[tuple[str, ...], str]] = []
        nps = self.surveys.get("nps")
        if nps is not None and (nps.min, nps.max) != (0, 10):
            errors.append((("surveys", "nps"),
                           f"product_nps needs the 0..10 scale, got {nps.min}..{nps.max}"))
        configured = self.known_names
        for name in self.events.aliases:
            if name not in configured:
                errors.append((("events", "aliases", name),
                               f"{name!r} is not a configured event name, so its aliases "
                               "would count under nothing"))
        claimed: dict[str, str] = {}
        for name, names in self.events.aliases.items():
            for alias in names:
                if alias in claimed and claimed[alias] != name:
                    errors.append((("events", "aliases", name),
                                   f"alias {alias!r} is already claimed by {claimed[alias]!r}"))
                elif alias in configured:
                    errors.append((("events", "aliases", name),
                                   f"alias {alias!r} is itself a configured event name"))
                claimed.setdefault(alias, name)
        if self.performance.crash in self.performance.events:
            errors.append((("performance", "crash"),
                           f"{self.performance.crash!r} is also a performance event"))
        if self.retention.forget_after_seconds < self.oldest_event:
            errors.append((("retention", "forget_after"),
                           f"{self.retention.forget_after} is shorter than the oldest event "
                           f"that counts ({self.oldest_event // 86400}d): a user would be new "
                           "twice inside one window"))
        for section in ("churn", "revenue_retention"):
            chosen = getattr(self, section)
            if "windows" not in chosen.model_fields_set:
                continue  # the defaults that are configured windows (see churn_windows)
            for i, w in enumerate(chosen.windows):
                if w not in self.windows:
                    errors.append(((section, "windows", str(i)),
                                   f"{w!r} is not one of the configured windows {self.windows}"))
        owner: dict[str, str] = {}
        for name, survey in self.surveys.items():
            if survey.event in owner:
                errors.append((("surveys", name, "event"),
                               f"{survey.event!r} is already the event of survey "
                               f"{owner[survey.event]!r}"))
            owner.setdefault(survey.event, name)
        return errors

    @cached_property
    def window_seconds(self) -> dict[str, int]:
        """Window label -> length in seconds, in declared order."""
        return {w: parse_duration(w) for w in self.windows}

    @cached_property
    def known_names(self) -> frozenset[str]:
        """Names that get their own ``name`` label value (the rest are ``other``)."""
        e = self.events
        names = set(e.known) | {
            e.signup, e.activation, e.session, e.conversion, e.purchase, e.refund, e.feature,
            e.subscription_started, e.subscription_changed, e.subscription_cancelled,
            e.marketing_spend, self.performance.crash, *self.performance.events,
        }
        for funnel in self.funnels.values():
            names.update(funnel.steps)
        names.update(s.event for s in self.surveys.values())
        return frozenset(names)

    @cached_property
    def churn_windows(self) -> list[str]:
        """The windows of product_user_churn_ratio (of the defaults, the configured ones)."""
        return [w for w in self.churn.windows if w in self.window_seconds]

    @cached_property
    def revenue_retention_windows(self) -> list[str]:
        """The windows of product_net_revenue_retention_ratio."""
        return [w for w in self.revenue_retention.windows if w in self.window_seconds]

    @cached_property
    def oldest_event(self) -> int:
        """How old (s) an event may be and still count (SPEC section 1, ``too_old``): the
        longest window plus a day, or the longest retention day plus two days if longer."""
        return max(max(self.window_seconds.values()) + 86400,
                   (max(self.retention.days) + 2) * 86400)

    @cached_property
    def alias_of(self) -> dict[str, str]:
        """Alias -> the configured name it counts as."""
        return {alias: name for name, names in self.events.aliases.items()
                for alias in names}


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            if nxt is None:
                key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = nxt
        elif (isinstance(node, yaml.SequenceNode) and str(key).isdigit()
              and int(key) < len(node.value)):
            node = node.value[int(key)]
        else:
            break
        line = node.start_mark.line + 1
    return line


def parse_definitions(text: str, source: str = "<definitions>") -> Definitions:
    """Validate definitions text; errors say ``source:line: field: message``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise DefinitionsError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DefinitionsError(f"{source}:1: the definitions must be a mapping of sections")
    try:
        definitions = Definitions.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            field = ".".join(str(p) for p in loc) or "(top)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"{source}:{_line_of(root, loc) or 1}: {field}: {msg}")
        raise DefinitionsError("\n".join(lines)) from None
    problems = definitions.semantic_errors()
    if problems:
        raise DefinitionsError("\n".join(
            f"{source}:{_line_of(root, loc) or 1}: {'.'.join(loc)}: {msg}"
            for loc, msg in problems))
    return definitions


def load_definitions(path: Path | None = None) -> Definitions:
    """Read and validate the definitions file (the bundled default when ``path`` is None)."""
    path = path or BUNDLED
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionsError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_definitions(text, str(path))
