"""How an import's batches lay out the rows they carry: one layout per table, written once.

The parsing side fills a batch by these layouts (`parsing.batches.ItemBatch`) and the
statements that write it read it by them (`imports`: PostgreSQL's COPY, SQLite's
multi-row INSERT), so adding a column is one change here and one value where the item
is encoded. Nothing here imports Django: the import's parsing process reads this module
without setting Django up.
"""

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ITEM", "RESPONSE", "RowLayout"]


@dataclass(frozen=True)
class RowLayout:
    """One table's rows in a batch: a flat list, `width` values per row (a flat list of
    strings crosses between processes at a fraction of the cost of a tuple per row, and it
    is what a multi-row INSERT binds).

    A row's first value is the index in its batch of the item it belongs to (for an item,
    its own): the database gives the ids, so the writer turns the index into the item's id
    and stores it in `index_column`. Then come `carried`, the row's own values as the
    database stores them (JSON as `json.dumps` text, as Django stores it). The writer adds
    `shared`, one value for the whole batch, and the default of every column left.
    """

    index_column: str
    carried: tuple[str, ...]
    shared: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return 1 + len(self.carried)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a writer sets from a row, in this order: the index's, the carried, the shared."""
        return (self.index_column, *self.carried, *self.shared)

    def offset(self, column: str) -> int:
        """Where a carried column's value sits within a row."""
        return 1 + self.carried.index(column)

    def rows(self, values: list) -> Iterator[tuple]:
        """The rows of a flat list, one tuple each: (index, *carried)."""
        return zip(*[iter(values)] * self.width, strict=True)


ITEM = RowLayout(
    index_column="id",
    carried=("external_id", "prompt", "metadata", "reference", "is_gold", "gold_answer"),
    shared=("project_id", "target"),
)
# A response's own id is the database's to give: nothing refers to it during an import.
RESPONSE = RowLayout(index_column="item_id", carried=("position", "model", "content", "metadata"))
