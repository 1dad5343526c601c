"""The default config's rows of one-vote items, from a `reading.pair_tables` table, built by Arrow.

An item judged once, by a ranking that strictly orders two responses (overlap 1: nearly every
item of a large project), yields the preference `aggregate.one_vote` gives under every policy:
chosen is the first group, votes 1, agreement 1, rank gap 1. Those rows are taken from the
table's columns as they are. Any other item (several judgments, ties, K-way rankings) goes
through the general path (`item_pairs`, `aggregate`, `Columns`), and the two parts are put
back in item order.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labeling.services.exporting import styles
from labeling.services.exporting.aggregate import one_vote_margins
from labeling.services.exporting.columns import assistant_messages


def one_vote_rows(table: pa.Table, schema: pa.Schema, *, conversational: bool) -> pa.RecordBatch:
    """The export rows (`schema`'s columns) of a table holding only one-vote rows."""
    count = table.num_rows
    ones = np.ones(count)
    if conversational:
        prompt = whole(table["messages"])
        chosen = assistant_messages(whole(table["chosen"]), schema.field("chosen").type)
        rejected = assistant_messages(whole(table["rejected"]), schema.field("rejected").type)
    else:
        prompt = styles.standard_prompts(whole(table["messages"]))
        chosen = styles.standard_completions(whole(table["chosen"]))
        rejected = styles.standard_completions(whole(table["rejected"]))
    columns = {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "item_id": table["external_id"],
        "chosen_model": known(table["chosen_model"]),
        "rejected_model": known(table["rejected_model"]),
        "votes": ones.astype(np.int32),
        "agreement": ones,
        "rank_gap": ones.astype(np.int32),
        "margin": one_vote_margins(table["strength"]),
    }
    return pa.RecordBatch.from_arrays([_array(columns[f.name], f.type) for f in schema], schema=schema)


def known(models: pa.ChunkedArray) -> pa.ChunkedArray:
    """Model names with an unknown model (stored as "") as null, as the general path writes them."""
    return pc.if_else(pc.equal(models, ""), pa.scalar(None, models.type), models)


def whole(column: pa.ChunkedArray) -> pa.Array:
    """A column as one array; without a copy when it is one already (`combine_chunks` always copies)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _array(values, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = whole(values)
    return values.cast(arrow_type) if isinstance(values, pa.Array) else pa.array(values, arrow_type)


def in_item_order(parts: list[pa.RecordBatch], table: pa.Table) -> pa.Table | None:
    """The rows of `parts` in the order of their items in `table` (None: no rows).

    Each item's rows all come from one part, in order; a stable sort on the item's first row
    in `table` puts the items back in place without reordering any item's own rows.
    """
    parts = [part for part in parts if part.num_rows]
    if len(parts) <= 1:
        return pa.Table.from_batches(parts) if parts else None
    merged = pa.Table.from_batches(parts)
    place = pc.index_in(merged["item_id"], value_set=whole(table["external_id"]))
    return merged.take(pc.sort_indices(place)).combine_chunks()
