"""A batch of export rows held column by column, and turned into one Arrow record batch.

Building columns and handing them to Arrow whole replaces datasets' per-row
`encode_example` (40 % of an export's time when rows went through
`Dataset.from_generator`). Message lists (conversational style) are kept flat, as
the roles, contents and offsets Arrow stores them as, so no dict is made per message.
"""

from typing import cast

import numpy as np
import pyarrow as pa

from labeling.services.exporting.styles import standard_completion, standard_prompt

MESSAGE_COLUMNS = ("prompt", "chosen", "rejected", "completion")
_ASSISTANT = "assistant"


class Messages:
    """A column of message lists: `list<struct<role, content>>`, built flat."""

    def __init__(self) -> None:
        self.offsets = [0]
        self.roles: list[str] = []
        self.contents: list[str] = []

    def append(self, roles: list[str], contents: list[str]) -> None:
        self.roles.extend(roles)
        self.contents.extend(contents)
        self.offsets.append(len(self.roles))

    def append_assistant(self, content: str) -> None:
        self.roles.append(_ASSISTANT)
        self.contents.append(content)
        self.offsets.append(len(self.roles))

    def array(self, arrow_type: pa.DataType) -> pa.Array:
        fields = list(arrow_type.value_type)
        by_name = {"role": self.roles, "content": self.contents}
        values = pa.StructArray.from_arrays([pa.array(by_name[f.name], f.type) for f in fields], fields=fields)
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values, type=arrow_type)


class Columns:
    """One split's rows of one batch: a list per column, `Messages` for conversational text."""

    def __init__(self, names: list[str], *, conversational: bool) -> None:
        self.data: dict[str, list | Messages] = {
            name: Messages() if conversational and name in MESSAGE_COLUMNS else [] for name in names
        }

    @property
    def rows(self) -> int:
        return len(cast(list, self.data["item_id"]))  # every config has one item_id per row (a list)

    def __getitem__(self, name: str):
        return self.data[name]

    def record_batch(self, schema: pa.Schema) -> pa.RecordBatch:
        arrays = {
            name: column.array(schema.field(name).type) if isinstance(column, Messages) else column
            for name, column in self.data.items()
        }
        return pa.RecordBatch.from_pydict(arrays, schema=schema)


class Text:
    """Writes prompts and completions in one style, into `Messages` or as strings."""

    def __init__(self, style: str) -> None:
        self.conversational = style == "conversational"

    def prompt(self, messages: list[dict]):
        """What `add_prompt` appends for every row of an item: computed once per item."""
        if self.conversational:
            return [message["role"] for message in messages], [message["content"] for message in messages]
        return standard_prompt(messages)

    def add_prompt(self, column, prepared) -> None:
        if self.conversational:
            column.append(*prepared)
        else:
            column.append(prepared)

    def add_completion(self, column, content: str) -> None:
        if self.conversational:
            column.append_assistant(content)
        else:
            column.append(standard_completion(content))


def assistant_messages(contents: pa.Array, arrow_type: pa.DataType) -> pa.ListArray:
    """A column of one-message lists (`Messages.append_assistant` for every string of `contents`), built by Arrow."""
    fields = list(arrow_type.value_type)
    types = {f.name: f.type for f in fields}
    count = len(contents)
    roles = pa.array([_ASSISTANT], types["role"]).take(np.zeros(count, np.int32))
    by_name = {"role": roles, "content": contents.cast(types["content"])}
    values = pa.StructArray.from_arrays([by_name[f.name] for f in fields], fields=fields)
    return pa.ListArray.from_arrays(pa.array(np.arange(count + 1, dtype=np.int32)), values, type=arrow_type)
