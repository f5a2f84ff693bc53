"""A log of Segment and RudderStack calls built from their spec examples, and its truth.

The calls are the example payloads of ``tests/fixtures/producers/`` (full ``context``,
``integrations``, ``receivedAt``, ``sentAt``, ``version``, nested ``products``), with
their ids, times and amounts varied per visitor. Each visitor browses anonymously, is
linked to a user id by an ``identify`` (or an ``alias``) call, browses on anonymously,
then checks out signed in; some are never linked.

The truth is computed here, independently of the streaming code (no import from
``leadline``): this module's own reading of the specs decides each call's name
(Segment's semantic events), amount (``amount``, else ``revenue``, else ``total``),
platform and identity. Stitching is forward: an anonymous call counts as the user when
it was sent after its visitor's link, and as ``anon:<anonymousId>`` before.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support import oracle, oracle_catalog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "producers"

#: Segment's semantic events and the names they count as (SPEC section 1).
ALIASES = {"Signed Up": "signup", "Product Viewed": "product_viewed",
           "Product Added": "cart_added", "Checkout Started": "checkout_started",
           "Order Completed": "purchase", "Order Refunded": "refund"}
MONEY = {"purchase", "refund"}
WEB_LIBRARIES = ("analytics.js", "RudderLabs JavaScript SDK")


def templates() -> dict[tuple[str, str], dict[str, Any]]:
    """(source, type or event name) -> the spec's example call."""
    out = {}
    for source in ("segment", "rudderstack"):
        for call in json.loads((FIXTURES / f"{source}.json").read_text())["calls"]:
            out[(source, call.get("event") if call["type"] == "track" else call["type"])] = call
    return out


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def platform_of(call: dict[str, Any]) -> str | None:
    """SPEC: ``platform``, else ``context.device.type``, else iOS/Android from
    ``context.os.name``, else web for the browser libraries."""
    context = call.get("context", {})
    if "platform" in call:
        return str(call["platform"])
    if context.get("device", {}).get("type"):
        return str(context["device"]["type"])
    os_name = str(context.get("os", {}).get("name", "")).lower()
    if os_name in ("ios", "iphone os", "android"):
        return "android" if os_name == "android" else "ios"
    if str(context.get("library", {}).get("name", "")).startswith(WEB_LIBRARIES):
        return "web"
    return None


@dataclass
class Corpus:
    """The messages to send, in order, and what they must produce."""

    messages: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    core: oracle.Truth = field(default_factory=oracle.Truth)
    catalog: oracle_catalog.Truth = field(default_factory=lambda: oracle_catalog.Truth(
        funnels={"checkout": (oracle_catalog.CHECKOUT, 3600)}))
    ignored: Counter[str] = field(default_factory=Counter)
    #: Events counted under a user id only because of a link (the stitching's effect).
    stitched: int = 0
    #: Index of the first message after every link was sent.
    linked_at: int = 0
    _linked: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def send(self, key: str, call: dict[str, Any]) -> None:
        self.messages.append((key.encode(), json.dumps(call).encode()))
        kind = call["type"]
        if kind in ("identify", "alias", "group"):
            self.ignored[kind] += 1
            anon = call.get("previousId" if kind == "alias" else "anonymousId")
            if kind != "group" and anon and call.get("userId"):
                self._linked[anon] = call["userId"]
            return
        name = {"page": "page_view", "screen": "screen_view"}.get(kind) or call["event"]
        name = ALIASES.get(name, name)
        props = call.get("properties", {})
        amount = next((props[f] for f in ("amount", "revenue", "total") if f in props), None)
        currency = str(props["currency"]).upper() if "currency" in props else None
        if "userId" in call:
            identity = call["userId"]
        elif call["anonymousId"] in self._linked:
            identity = self._linked[call["anonymousId"]]
            self.stitched += 1
        else:
            identity = "anon:" + call["anonymousId"]
        ts = datetime.fromisoformat(call["timestamp"].replace("Z", "+00:00")).timestamp()
        platform = platform_of(call)
        self.core.events.append({"identity": identity, "ts": ts, "name": name,
                                 "platform": platform, "amount": amount if name in MONEY
                                 else None, "currency": currency})
        kept: dict[str, object] = {}
        if name in MONEY:
            kept = {"amount": amount, "currency": currency}
        self.catalog.records.append(oracle_catalog.Record(
            call["messageId"], identity, round(ts * 1000), name, platform, kept))


def build(now: float, visitors: int = 120) -> Corpus:
    """Every visitor's calls, in the order they must be sent (see the module doc).

    First every visitor's anonymous visit and link (:attr:`Corpus.linked_at`: where the
    second part starts), then their anonymous browsing and checkout. Times keep clear of
    every window edge: the anonymous visit 2 h ago (in 24 h, not in 1 h), the rest 30 to
    15 minutes ago; the funnel spans 3 minutes (within 1 h).
    """
    t = templates()
    corpus = Corpus()

    def call(v: int, kind: str, ts: float, signed_in: bool = False,
             **props: Any) -> dict[str, Any]:
        source = "segment" if v % 3 else "rudderstack"
        c = copy.deepcopy(t.get((source, kind)) or t[("segment", kind)])
        corpus._n += 1
        c["messageId"] = f"{source}-{v}-{corpus._n}"
        c["anonymousId"] = anon(v)
        if signed_in:
            c["userId"] = user(v)
        else:
            c.pop("userId", None)
        c["timestamp"] = _rfc3339(ts)
        if "originalTimestamp" in c:
            c["originalTimestamp"] = _rfc3339(ts)
        if props:
            c["properties"] = {**c.get("properties", {}), **props}
        return c

    def anon(v: int) -> str:
        return f"anon-{v:04d}-7f3a"

    def user(v: int) -> str:
        return f"user-{v:04d}"

    def linked(v: int) -> bool:
        return v % 5 != 0  # every fifth visitor is never linked

    def view(v: int) -> str:
        return "screen" if v % 4 == 1 else "page"

    for v in range(visitors):
        corpus.send(anon(v), call(v, view(v), now - 7200 + v))
        if linked(v):
            link = call(v, "alias" if v % 7 == 0 else "identify", now - 6000 + v,
                        signed_in=True)
            if link["type"] == "alias":
                link["previousId"] = anon(v)
            corpus.send(anon(v), link)
            corpus.send(user(v), call(v, "Signed Up", now - 5990 + v, signed_in=True))
    corpus.linked_at = len(corpus.messages)
    for v in range(visitors):
        corpus.send(anon(v), call(v, view(v), now - 1800 + v))
        start = now - 1200 + v
        corpus.send(anon(v), call(v, "Product Viewed", start))
        corpus.send(anon(v), call(v, "Product Added", start + 60))
        if linked(v):
            corpus.send(user(v), call(v, "Checkout Started", start + 120, signed_in=True))
            if v % 3 != 2:
                order = call(v, "Order Completed", start + 180, signed_in=True)
                props = order["properties"]
                props["currency"] = ("usd", "EUR", "gbp")[v % 3]
                if v % 2:  # amount from revenue
                    props["revenue"] = round(10 + v * 0.25, 2)
                else:  # no revenue: amount from total
                    props.pop("revenue", None)
                    props["total"] = round(20 + v * 0.5, 2)
                corpus.send(user(v), order)
        if v % 10 == 3:
            corpus.send(user(v), call(v, "group", now - 900 + v, signed_in=True))
    return corpus


def revenue(corpus: Corpus) -> dict[str, Decimal]:
    """Sum of purchase amounts by currency (for a readable failure message)."""
    out: dict[str, Decimal] = Counter()  # type: ignore[assignment]
    for e in corpus.core.events:
        if e["name"] == "purchase":
            out[e["currency"]] += Decimal(str(e["amount"]))
    return out
