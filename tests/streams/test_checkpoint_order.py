"""A checkpoint's user records are sent only after its other records were confirmed."""

from __future__ import annotations

import asyncio

import pytest

from leadline.streams.checkpoint import Records, send_in_order
from leadline.streams.store import is_stamped_record, link_table_key, user_table_key

RECORDS: Records = [
    (0, b"0|c|users/300/0", b"cell"),
    (0, b"0|d|0|17", b"ids"),
    (0, user_table_key(0, "u|with|bars"), b"user"),
    (0, link_table_key(0, "anon:a"), b"link"),
    (1, b"1|c|events/300/0", None),
    (1, user_table_key(1, "u2"), b"user"),
]


def test_user_records_are_recognised_by_their_key() -> None:
    assert [is_stamped_record(k) for _, k, _ in RECORDS] == [False, False, True, False, False,
                                                          True]


def test_users_go_in_a_second_send_after_the_first_was_confirmed() -> None:
    sent: list[Records] = []

    async def send(part: Records) -> dict[int, int]:
        sent.append(part)
        return {p: 100 * len(sent) + p for p, _, _ in part}  # the offset after the last

    offsets = asyncio.run(send_in_order(send, RECORDS))
    assert sent == [[RECORDS[0], RECORDS[1], RECORDS[3], RECORDS[4]],
                    [RECORDS[2], RECORDS[5]]]
    assert offsets == {0: 200, 1: 201}  # each partition's last batch


def test_a_failed_first_send_sends_no_user_record() -> None:
    """The broker refused (part of) the cells: no user record may land, or a restored
    user stamp would claim cells that do not hold its events."""
    sent: list[Records] = []

    async def send(part: Records) -> dict[int, int]:
        sent.append(part)
        raise ConnectionError("a batch of the first send failed")

    with pytest.raises(ConnectionError):
        asyncio.run(send_in_order(send, RECORDS))
    assert len(sent) == 1 and not any(is_stamped_record(k) for _, k, _ in sent[0])
