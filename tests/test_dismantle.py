"""Big containers are emptied a piece at a time before they are let go, and the analysis's own big
parts are let go in refinery's worker: freed in one cascade, a 100 MB trace's citation index or its
spool's layouts held the host's event loop (`core.dismantle`)."""

from __future__ import annotations

from refinery.core import dismantle
from refinery.core.dismantle import emptied


class Watched:
    """Notes how many items its container still held when it was freed."""

    def __init__(self, seen: list[int], holder: list | dict) -> None:
        self.seen, self.holder = seen, holder

    def __del__(self) -> None:
        self.seen.append(len(self.holder))


def test_a_list_is_emptied_in_pieces_of_at_most_the_piece_size(monkeypatch):
    monkeypatch.setattr(dismantle, "PIECE_ITEMS", 10)
    seen: list[int] = []
    items: list[object] = []
    items.extend(Watched(seen, items) for _ in range(35))
    emptied(items)
    assert items == [] and len(seen) == 35
    assert sorted(set(seen), reverse=True) == [25, 15, 5, 0]  # four pieces: 10, 10, 10, 5


def test_a_dict_is_emptied_an_item_at_a_time():
    seen: list[int] = []
    table: dict[int, object] = {}
    table.update((i, Watched(seen, table)) for i in range(20))
    emptied(table)
    assert table == {} and sorted(seen, reverse=True) == list(range(19, -1, -1))


def test_other_values_are_left_as_they_are():
    kept = ("a", "b")
    text = "abc"
    emptied(kept, text, None)
    assert kept == ("a", "b") and text == "abc"
