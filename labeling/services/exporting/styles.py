"""How prompts and completions are written, and the Arrow features of each config.

Conversational: lists of {role, content} messages (TRL's conversational format).
Standard: text TRL can concatenate: a prompt in `\\n\\nHuman: ...\\n\\nAssistant:` form
and completions starting with a space, because TRL joins prompt + chosen as is.
"""

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Features, Value

STYLES = ("conversational", "standard")
_SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System"}
_MESSAGE = {"role": Value("string"), "content": Value("string")}


def standard_prompt(messages: list[dict]) -> str:
    """The prompt as standard text (conversational prompts are written by `columns.Text`)."""
    turns = "".join(f"\n\n{_SPEAKERS[message['role']]}: {message['content']}" for message in messages)
    return turns + "\n\nAssistant:"


def standard_completion(content: str) -> str:
    return " " + content


def standard_prompts(messages: pa.ListArray) -> pa.Array:
    """`standard_prompt` of every message list of an Arrow column, computed by Arrow."""
    roles = messages.flatten().field("role")
    speakers = pc.index_in(roles, value_set=pa.array(list(_SPEAKERS)))
    if speakers.null_count:
        raise KeyError(roles.filter(pc.is_null(speakers))[0].as_py())  # what `_SPEAKERS[role]` raises
    names = pa.array(list(_SPEAKERS.values())).take(speakers)
    turns = pc.binary_join_element_wise("\n\n", names, ": ", messages.flatten().field("content"), "")
    per_prompt = pa.ListArray.from_arrays(_offsets(messages), turns)
    return pc.binary_join_element_wise(pc.binary_join(per_prompt, ""), "\n\nAssistant:", "")


def standard_completions(contents: pa.Array) -> pa.Array:
    """`standard_completion` of every string of an Arrow column."""
    return pc.binary_join_element_wise(" ", contents, "")


def _offsets(lists: pa.ListArray) -> pa.Array:
    """The offsets of `lists` counted from its first value, so they index `lists.flatten()`."""
    offsets = lists.offsets
    return pc.subtract(offsets, offsets[0]) if len(offsets) and offsets[0].as_py() else offsets


def data_dir(config: str) -> str:
    """Where a config's Parquet files live in the Hub layout."""
    return "data" if config == "default" else config


# What the less obvious columns mean; the dataset card can print these beside the column types.
COLUMN_NOTES = {
    "rank_gap": (
        "ranking projects only: how many places apart the ranking put chosen and rejected (a group of tied "
        "responses is one place; 1 = neighbours, at most K-1). Aggregated with `majority` or `unanimous`: the "
        "median (lower middle value) of the gaps in the votes that agree; with `all`: that judgment's own gap"
    ),
    "margin": "how much better, for RewardTrainer: the mean strength (1-3) of the agreeing votes times `agreement`",
}


def features(config: str, style: str, *, margin: bool = False, rank_gap: bool = False) -> Features:
    """The columns of `config`; `rank_gap` (K-way ranking projects) comes after `agreement`, `margin` last."""
    text = [_MESSAGE] if style == "conversational" else Value("string")
    if config == "raw":
        return Features(
            {
                "judgment_id": Value("string"),
                "item_id": Value("string"),
                "annotator": Value("string"),
                "ranking": [[Value("string")]],
                "ranking_models": [[Value("string")]],
                "shown_order": [Value("string")],
                "strength": Value("int8"),
                "both_bad": Value("bool"),
                "rationale": Value("string"),
                "criteria": Value("string"),
                "seconds": Value("float64"),
                "late": Value("bool"),
                "created_at": Value("string"),
                "updated_at": Value("string"),
            }
        )
    common = {"item_id": Value("string"), "votes": Value("int32"), "agreement": Value("float64")}
    if config == "unpaired":
        return Features(
            {"prompt": text, "completion": text, "label": Value("bool"), "model": Value("string"), **common}
        )
    columns = {
        "prompt": text,
        "chosen": text,
        "rejected": text,
        "item_id": Value("string"),
        "chosen_model": Value("string"),
        "rejected_model": Value("string"),
        "votes": Value("int32"),
        "agreement": Value("float64"),
    }
    if rank_gap:
        columns["rank_gap"] = Value("int32")
    if margin:
        columns["margin"] = Value("float64")
    return Features(columns)


def messages_type() -> pa.DataType:
    """The Arrow type of a conversational prompt (a list of {role, content} messages)."""
    return features("default", "conversational").arrow_schema.field("prompt").type
