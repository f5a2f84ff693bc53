"""Rules across fields that the catalog metrics rely on; errors name file, line and field."""

from __future__ import annotations

import pytest

from leadline.config.definitions import DefinitionsError, parse_definitions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("surveys:\n  nps: {event: nps_submitted, min: 1, max: 5}\n",
         "f.yaml:2: surveys.nps: product_nps needs the 0..10 scale, got 1..5"),
        ("windows: [5m]\nsurveys:\n  nps:\n    event: nps_submitted\n    min: 0\n    max: 9\n",
         "f.yaml:4: surveys.nps: product_nps needs the 0..10 scale, got 0..9"),
        ("surveys:\n  a: {event: rated, min: 1, max: 5}\n  b:\n    event: rated\n"
         "    min: 1\n    max: 3\n",
         "f.yaml:4: surveys.b.event: 'rated' is already the event of survey 'a'"),
    ],
)
def test_catalog_rules_name_line_and_field(text: str, message: str) -> None:
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert str(err.value) == message


def test_both_rules_are_reported_together() -> None:
    text = ("surveys:\n  nps: {event: e, min: 1, max: 10}\n  csat: {event: e, min: 1, max: 5}\n")
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert str(err.value).splitlines() == [
        "f.yaml:2: surveys.nps: product_nps needs the 0..10 scale, got 1..10",
        "f.yaml:3: surveys.csat.event: 'e' is already the event of survey 'nps'",
    ]


def test_other_survey_scales_are_free() -> None:
    d = parse_definitions("surveys:\n  csat: {event: c, min: 1, max: 7}\n"
                          "  ces: {event: effort, min: 1, max: 5}\n", "f.yaml")
    assert set(d.surveys) == {"csat", "ces"}
