"""A batch of checked items is laid out as the data layer's `import_rows` says, by column name."""

import json

from labeling.db.import_rows import ITEM, RESPONSE
from labeling.services.parsing.batches import ItemBatch
from labeling.services.parsing.shapes import NormalizedItem, NormalizedResponse


def item(external_id: str, *, gold=None, reference=None) -> NormalizedItem:
    return NormalizedItem(
        external_id=external_id,
        prompt=[{"role": "user", "content": f"Q {external_id}?"}],
        responses=[NormalizedResponse("Yes.", "m-a", {"t": 1}), NormalizedResponse("No.")],
        reference=reference,
        metadata={"source": external_id},
        gold_answer=gold,
    )


def rows(layout, values: list) -> list[dict]:
    return [dict(zip((layout.index_column, *layout.carried), row, strict=True)) for row in layout.rows(values)]


def test_a_batch_holds_each_column_where_the_layout_puts_it():
    batch = ItemBatch()
    batch.add(item("a", gold=[[0], [1]]))
    batch.add(item("b", reference=[[1], [0]]))

    assert len(batch) == 2
    assert batch.external_ids() == ["a", "b"]
    assert rows(ITEM, batch.items) == [
        {
            "id": 0,
            "external_id": "a",
            "prompt": json.dumps([{"role": "user", "content": "Q a?"}]),
            "metadata": json.dumps({"source": "a"}),
            "reference": None,
            "is_gold": True,
            "gold_answer": "[[0], [1]]",
        },
        {
            "id": 1,
            "external_id": "b",
            "prompt": json.dumps([{"role": "user", "content": "Q b?"}]),
            "metadata": json.dumps({"source": "b"}),
            "reference": "[[1], [0]]",
            "is_gold": False,
            "gold_answer": None,
        },
    ]
    assert rows(RESPONSE, batch.responses) == [
        {"item_id": index, "position": position, "model": model, "content": content, "metadata": metadata}
        for index in (0, 1)
        for position, model, content, metadata in ((0, "m-a", "Yes.", '{"t": 1}'), (1, "", "No.", "{}"))
    ]


def test_a_batch_without_some_items_renumbers_the_rest_and_their_responses():
    batch = ItemBatch()
    for external_id in ("a", "b", "c"):
        batch.add(item(external_id))

    kept = batch.without({"b"})

    assert kept.external_ids() == ["a", "c"]
    assert [row["id"] for row in rows(ITEM, kept.items)] == [0, 1]
    assert [(row["item_id"], row["position"]) for row in rows(RESPONSE, kept.responses)] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert rows(ITEM, kept.items)[1]["prompt"] == json.dumps([{"role": "user", "content": "Q c?"}])
    assert not batch.without({"a", "b", "c"})
