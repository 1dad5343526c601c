"""Recognise a row's shape from its columns and normalise it into items.

Shapes (DESIGN.md): native, flat pair, TRL preference, HH-RLHF, Chatbot Arena,
UltraFeedback, OpenAssistant message trees. A row becomes one item, except an
OpenAssistant tree, which becomes one item per prompter message with 2+ replies.
Every function raises `RowInvalid` with a reason naming the field; nothing here
touches the database.
"""

from labeling.services.parsing.shapes.datasets import _arena, _oasst_tree, _ultrafeedback
from labeling.services.parsing.shapes.fields import ROLES, NormalizedItem, NormalizedResponse, RowInvalid
from labeling.services.parsing.shapes.preference import _flat_pair, _hh, _native, _trl

__all__ = ["ROLES", "SHAPES", "NormalizedItem", "NormalizedResponse", "RowInvalid", "detect_shape", "normalize"]

SHAPES = ("native", "flat_pair", "trl_preference", "hh_rlhf", "chatbot_arena", "ultrafeedback", "oasst_tree")


def detect_shape(columns: set[str]) -> str:
    """The shape a row's columns announce; raises RowInvalid naming what is missing."""
    if "responses" in columns:
        return "native"
    if {"response_a", "response_b"} <= columns:
        return "flat_pair"
    if {"chosen", "rejected"} <= columns:
        return "trl_preference" if "prompt" in columns else "hh_rlhf"
    if {"conversation_a", "conversation_b"} <= columns:
        return "chatbot_arena"
    if {"instruction", "completions"} <= columns:
        return "ultrafeedback"
    if {"message_tree_id", "prompt"} <= columns:
        return "oasst_tree"
    raise RowInvalid(
        f"columns {sorted(columns)} match no known shape: expected `prompt` + `responses` (native), "
        "`prompt`, `response_a`, `response_b` (flat pair), `prompt`, `chosen`, `rejected` (TRL preference), "
        "`chosen`, `rejected` transcripts (HH-RLHF), `conversation_a`, `conversation_b` (Chatbot Arena), "
        "`instruction` + `completions` (UltraFeedback) or `message_tree_id` + `prompt` (OpenAssistant tree)"
    )


def normalize(row: dict, shape: str) -> list[NormalizedItem]:
    """The items a row holds: one, or for an OpenAssistant tree one per prompter message with 2+ replies."""
    if shape == "oasst_tree":
        return _oasst_tree(row)
    return [_ONE_ITEM[shape](row)]


_ONE_ITEM = {
    "native": _native,
    "flat_pair": _flat_pair,
    "trl_preference": _trl,
    "hh_rlhf": _hh,
    "chatbot_arena": _arena,
    "ultrafeedback": _ultrafeedback,
}
