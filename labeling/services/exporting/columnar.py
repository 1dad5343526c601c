"""The default config's rows of one-vote items, built by Arrow from a `reading.Chunk`.

An item judged once, by a ranking that strictly orders two responses (overlap 1: nearly every
item of a large project), yields the preference `aggregate.one_vote` gives under every policy:
chosen is the first group, votes 1, agreement 1, rank gap 1. `judged` finds them without a
Python object per row (Arrow reads which rankings strictly order two responses and joins the
items and responses to the judgments), and `one_vote_rows` takes their rows from the table's
columns as they are. Any other item (several judgments, ties, K-way rankings) goes through the
general path (`rows`), and `in_item_order` puts the two parts back in item order.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labeling.services.exporting.aggregate import ONE_VOTE_RANKING, one_vote_margins
from labeling.services.exporting.columns import assistant_messages
from labeling.services.exporting.reading import Chunk
from labeling.services.exporting.styles import standard_completions, standard_prompts


def judged(chunk: Chunk) -> pa.Table:
    """The chunk's judgments with their item's `external_id` and `messages`, `pair` (the ranking strictly
    orders two responses), `chosen_id` and `rejected_id` (null unless `pair`), and each side's `_model`
    and content (`chosen`, `rejected`: null unless `pair` and a response of the item). Judgments of
    items the chunk does not hold (gold items, when they are left out) are dropped."""
    judgments, items = chunk.judgments, chunk.items
    external_id, messages = items["external_id"], items["messages"]
    if judgments.num_rows != items.num_rows or not judgments["item_pk"].equals(items["item_pk"]):
        at = pc.index_in(judgments["item_pk"], value_set=items["item_pk"])  # items judged more than once, gold
        if at.null_count:
            judgments, at = judgments.filter(at.is_valid()), at.drop_null()
        external_id, messages = external_id.take(at), messages.take(at)
    found = pc.extract_regex(judgments["ranking"], ONE_VOTE_RANKING)
    chosen, rejected = (pc.cast(ids, pa.int64()) for ids in found.flatten())
    pair = pc.fill_null(pc.not_equal(chosen, rejected), False)
    table = pa.table(
        {
            "item_pk": judgments["item_pk"],
            "ranking": judgments["ranking"],
            "strength": judgments["strength"],
            "pair": pair,
            "chosen_id": pc.if_else(pair, chosen, pa.scalar(None, pa.int64())),
            "rejected_id": pc.if_else(pair, rejected, pa.scalar(None, pa.int64())),
            "external_id": external_id,
            "messages": messages,
        }
    )
    responses = chunk.responses
    for side in ("chosen", "rejected"):
        at = pc.index_in(table[f"{side}_id"], value_set=responses["id"])
        same_item = pc.equal(responses["item_pk"].take(at), table["item_pk"])  # a response of the judged item
        at = pc.if_else(same_item, at, pa.scalar(None, at.type))
        table = table.append_column(f"{side}_model", responses["model"].take(at))
        table = table.append_column(side, responses["content"].take(at))
    return table


def one_vote_mask(table: pa.Table) -> np.ndarray:
    """Rows (of `judged`) of items with exactly one judgment that strictly orders two of the item's responses."""
    items = table["item_pk"].to_numpy()
    first = np.ones(len(items), bool)
    first[1:] = items[1:] != items[:-1]
    last = np.ones(len(items), bool)
    last[:-1] = first[1:]
    pair = table["pair"].to_numpy(zero_copy_only=False)
    found = table["chosen_model"].is_valid().to_numpy(zero_copy_only=False)
    found &= table["rejected_model"].is_valid().to_numpy(zero_copy_only=False)
    return first & last & pair & found


def one_vote_rows(table: pa.Table, schema: pa.Schema, *, conversational: bool) -> pa.RecordBatch:
    """The export rows (`schema`'s columns) of a `judged` table holding only one-vote rows."""
    count = table.num_rows
    ones = np.ones(count)
    if conversational:
        prompt = whole(table["messages"])
        chosen = assistant_messages(whole(table["chosen"]), schema.field("chosen").type)
        rejected = assistant_messages(whole(table["rejected"]), schema.field("rejected").type)
    else:
        prompt = standard_prompts(whole(table["messages"]))
        chosen = standard_completions(whole(table["chosen"]))
        rejected = standard_completions(whole(table["rejected"]))
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
