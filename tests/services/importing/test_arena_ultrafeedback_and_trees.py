"""Importing Chatbot Arena battles, UltraFeedback rows, OpenAssistant trees and K-way native rows."""

import json
from pathlib import Path

import pandas as pd
import pytest

from labeling.models import Item
from labeling.services.importing import ImportRejected, items_import

FORMATS = ["jsonl", "parquet"]


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def write_rows(folder: Path, rows: list[dict], fmt: str) -> Path:
    if fmt == "jsonl":
        path = folder / "rows.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    else:
        path = folder / "rows.parquet"
        pd.DataFrame(rows).to_parquet(path)
    return path


def held(project) -> dict[str, Item]:
    return {item.external_id: item for item in Item.objects.filter(project=project).prefetch_related("responses")}


def answers(item: Item) -> list[tuple[str, str]]:
    return [(response.model, response.content) for response in item.responses.all()]


def rejected(project, path) -> str:
    with pytest.raises(ImportRejected) as caught:
        items_import(project=project, path=path)
    assert not Item.objects.filter(project=project).exists()
    return str(caught.value)


# -- Chatbot Arena ------------------------------------------------------------------


def battle(winner, *, ask="Name a colour.", a="Blue.", b="Green.", **extra) -> dict:
    return {
        "question_id": f"q-{ask}-{winner}",
        "model_a": "vicuna-13b",
        "model_b": "alpaca-13b",
        "winner": winner,
        "conversation_a": [user(ask), assistant(a)],
        "conversation_b": [user(ask), assistant(b)],
        "turn": 1,
        **extra,
    }


ARENA_ROWS = [
    {**battle("model_a", ask="First?"), "id": "win-a"},
    {**battle("model_b", ask="Second?"), "id": "win-b"},
    {**battle("tie", ask="Third?"), "id": "tie"},
    {**battle("tie (bothbad)", ask="Fourth?"), "id": "both-bad"},
    {**battle(None, ask="Fifth?"), "id": "no-vote"},
    {
        "id": "multi-turn",
        "model_a": "vicuna-13b",
        "model_b": "alpaca-13b",
        "winner": "model_b",
        "turn": 2,
        "conversation_a": [user("Hi!"), assistant("Hello."), user("A joke?"), assistant("Knock knock.")],
        "conversation_b": [user("Hi!"), assistant("Hey there."), user("A joke?"), assistant("Why did...")],
    },
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_arena_battles_import_with_the_vote_as_hidden_reference(project, tmp_path, fmt):
    report = items_import(project=project, path=write_rows(tmp_path, ARENA_ROWS, fmt))

    assert (report.shape, report.rows, report.imported) == ("chatbot_arena", 6, 6)
    items = held(project)
    assert items["win-a"].prompt == [user("First?")]
    assert answers(items["win-a"]) == [("vicuna-13b", "Blue."), ("alpaca-13b", "Green.")]
    references = {external_id: item.reference for external_id, item in items.items()}
    assert references == {
        "win-a": [[0], [1]],
        "win-b": [[1], [0]],
        "tie": [[0, 1]],
        "both-bad": [[0, 1]],
        "no-vote": None,
        "multi-turn": None,
    }
    assert items["both-bad"].metadata["both_bad"] is True
    assert "both_bad" not in items["tie"].metadata
    assert items["win-a"].metadata["question_id"] == "q-First?-model_a"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_multi_turn_battle_keeps_its_first_turn_and_not_its_vote(project, tmp_path, fmt):
    items_import(project=project, path=write_rows(tmp_path, ARENA_ROWS[-1:], fmt))

    item = Item.objects.get(external_id="multi-turn")
    assert item.prompt == [user("Hi!")]
    assert answers(item) == [("vicuna-13b", "Hello."), ("alpaca-13b", "Hey there.")]
    assert item.reference is None  # the vote judged the whole conversations, not these first answers
    assert item.metadata == {"turn": 2, "truncated_to_first_turn": True, "arena_winner": "model_b"}


def test_a_shared_system_prompt_stays_in_the_arena_prompt(project, tmp_path):
    system = {"role": "system", "content": "Be brief."}
    row = battle("model_a")
    row["conversation_a"].insert(0, system)
    row["conversation_b"].insert(0, system)

    items_import(project=project, path=write_rows(tmp_path, [row], "jsonl"))

    assert Item.objects.get(project=project).prompt == [system, user("Name a colour.")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_arena_winner_is_named_with_the_allowed_values(project, tmp_path, fmt):
    path = write_rows(tmp_path, [battle("model_a"), battle("model_c", ask="Other?")], fmt)

    message = rejected(project, path)

    assert (
        "row 2: `winner` is 'model_c'; use one of 'model_a', 'model_b', 'tie', 'tie (bothbad)' or leave it empty"
        in message
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_arena_conversations_that_ask_different_questions_are_refused(project, tmp_path, fmt):
    row = battle("model_a")
    row["conversation_b"] = [user("Name an animal."), assistant("Cat.")]

    message = rejected(project, write_rows(tmp_path, [row], fmt))

    assert "row 1: `conversation_a` and `conversation_b` must put the same user turns to both models" in message
    assert "they differ at user turn 1" in message


def test_a_multi_turn_battle_whose_later_questions_differ_is_refused(project, tmp_path):
    row = dict(ARENA_ROWS[-1])
    row["conversation_b"] = [user("Hi!"), assistant("Hey there."), user("A riddle?"), assistant("What has keys?")]

    message = rejected(project, write_rows(tmp_path, [row], "jsonl"))

    assert "they differ at user turn 2" in message


def test_an_arena_conversation_ending_with_the_user_is_refused(project, tmp_path):
    row = battle("tie")
    row["conversation_b"] = [user("Name a colour.")]

    message = rejected(project, write_rows(tmp_path, [row], "jsonl"))

    assert "row 1: `conversation_b` must end with the model's answer (an assistant message)" in message


# -- UltraFeedback ------------------------------------------------------------------


def completion(model, response, overall=None, fine=None) -> dict:
    entry = {"model": model, "response": response, "principle": "helpfulness"}
    if overall is not None:
        entry["overall_score"] = overall
    if fine is not None:
        entry["fine-grained_score"] = fine
    return entry


ULTRAFEEDBACK_ROWS = [
    {
        "id": "scored",
        "source": "evol_instruct",
        "instruction": "Explain recursion in one line.",
        "completions": [
            completion("gpt-4", "A function calling itself.", 8.5, 4.75),
            completion("llama-2-7b-chat", "Recursion is recursion.", 3.0, 2.0),
            completion("wizardlm-13b", "Solving a problem via smaller copies of itself.", 8.5, 4.5),
            completion("falcon-40b-instruct", "A loop.", 5.0, 3.25),
        ],
    },
    {
        "id": "fine-only",
        "instruction": "Is 7 prime?",
        "completions": [completion("gpt-4", "Yes.", fine=5.0), completion("pythia-12b", "No.", fine=1.5)],
    },
    {
        "id": "unscored",
        "instruction": "Say hello.",
        "completions": [completion("gpt-4", "Hello!"), completion("pythia-12b", "Bye.")],
    },
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ultrafeedback_rows_become_k_way_items_ranked_by_overall_score(project, tmp_path, fmt):
    report = items_import(project=project, path=write_rows(tmp_path, ULTRAFEEDBACK_ROWS, fmt))

    assert (report.shape, report.rows, report.imported) == ("ultrafeedback", 3, 3)
    items = held(project)
    scored = items["scored"]
    assert scored.prompt == [user("Explain recursion in one line.")]
    assert [model for model, _ in answers(scored)] == [
        "gpt-4",
        "llama-2-7b-chat",
        "wizardlm-13b",
        "falcon-40b-instruct",
    ]
    assert scored.reference == [[0, 2], [3], [1]]  # 8.5 and 8.5 tie, then 5.0, then 3.0
    assert [response.metadata for response in scored.responses.all()][:2] == [
        {"overall_score": 8.5, "fine-grained_score": 4.75},
        {"overall_score": 3.0, "fine-grained_score": 2.0},
    ]
    assert scored.metadata == {"source": "evol_instruct"}
    assert items["fine-only"].reference == [[0], [1]]
    assert items["unscored"].reference is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_ultrafeedback_with_more_than_eight_completions_names_the_count(project, tmp_path, fmt):
    row = {"instruction": "Count.", "completions": [completion(f"m-{n}", f"{n}") for n in range(9)]}

    message = rejected(project, write_rows(tmp_path, [ULTRAFEEDBACK_ROWS[2], row], fmt))

    assert "row 2: `completions` holds 9 completions; an item takes 2 to 8" in message


def test_an_ultrafeedback_score_that_is_not_a_number_is_named(project, tmp_path):
    row = {"instruction": "Q?", "completions": [completion("a", "yes", "great"), completion("b", "no", 2)]}

    message = rejected(project, write_rows(tmp_path, [row], "jsonl"))

    assert "row 1: `completions[0].overall_score` must be a number (got 'great')" in message


# -- OpenAssistant message trees ------------------------------------------------------


def message(message_id, role, text, rank=None, replies=(), **extra) -> dict:
    return {
        "message_id": message_id,
        "role": role,
        "text": text,
        "rank": rank,
        "lang": "en",
        "deleted": False,
        "replies": list(replies),
        **extra,
    }


def tree(tree_id, root) -> dict:
    return {"message_tree_id": tree_id, "tree_state": "ready_for_export", "prompt": root}


GARDEN_TREE = tree(
    "t-garden",
    message(
        "p0",
        "prompter",
        "How do I grow tomatoes?",
        replies=[
            message(
                "a1",
                "assistant",
                "Plant them in sun.",
                rank=1,
                replies=[message("p2", "prompter", "How much sun?", replies=[message("a5", "assistant", "Eight h.")])],
            ),
            message(
                "a2",
                "assistant",
                "Full sun, deep watering, stakes.",
                rank=0,
                replies=[
                    message(
                        "p1",
                        "prompter",
                        "Which stakes?",
                        replies=[
                            message("a3", "assistant", "Bamboo.", rank=1),
                            message("a4", "assistant", "Two-metre wooden stakes.", rank=0),
                        ],
                    )
                ],
            ),
            message("a6", "assistant", "Buy them instead.", rank=2),
            message("a7", "assistant", "Spam spam.", deleted=True),
        ],
    ),
)

CROWDED_TREE = tree(
    "t-crowded",
    message(
        "q0",
        "prompter",
        "Give me a word.",
        replies=[message(f"w{n}", "assistant", f"Word {n}.", rank=(n * 7) % 10) for n in range(10)],
    ),
)

UNRANKED_TREE = tree(
    "t-unranked",
    message(
        "u0", "prompter", "Hi?", replies=[message("v1", "assistant", "Hello."), message("v2", "assistant", "Hey.")]
    ),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_oasst_tree_yields_one_item_per_prompter_message_with_two_replies(project, tmp_path, fmt):
    report = items_import(project=project, path=write_rows(tmp_path, [GARDEN_TREE], fmt))

    assert (report.shape, report.rows, report.imported) == ("oasst_tree", 1, 2)
    items = held(project)
    assert sorted(items) == ["t-garden/p0", "t-garden/p1"]
    root = items["t-garden/p0"]
    assert root.prompt == [user("How do I grow tomatoes?")]
    assert [content for _, content in answers(root)] == [
        "Plant them in sun.",
        "Full sun, deep watering, stakes.",
        "Buy them instead.",
    ]  # in tree order, the deleted reply left out
    assert root.reference == [[1], [0], [2]]
    assert [response.metadata for response in root.responses.all()] == [
        {"message_id": "a1"},
        {"message_id": "a2"},
        {"message_id": "a6"},
    ]
    assert root.metadata == {"message_tree_id": "t-garden", "message_id": "p0", "lang": "en"}
    follow_up = items["t-garden/p1"]
    assert follow_up.prompt == [
        user("How do I grow tomatoes?"),
        assistant("Full sun, deep watering, stakes."),
        user("Which stakes?"),
    ]
    assert [content for _, content in answers(follow_up)] == ["Bamboo.", "Two-metre wooden stakes."]
    assert follow_up.reference == [[1], [0]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_oasst_node_with_more_than_eight_replies_keeps_the_best_ranked(project, tmp_path, fmt):
    items_import(project=project, path=write_rows(tmp_path, [CROWDED_TREE, UNRANKED_TREE], fmt))

    crowded = Item.objects.get(external_id="t-crowded/q0")
    ranks = {f"Word {n}.": (n * 7) % 10 for n in range(10)}
    kept = [content for _, content in answers(crowded)]
    assert sorted(ranks[content] for content in kept) == list(range(8))
    assert kept == [content for content in ranks if ranks[content] < 8]  # tree order
    assert crowded.reference == [[kept.index(content)] for content in sorted(kept, key=ranks.get)]
    assert crowded.metadata["replies_dropped"] == 2
    assert "kept the best-ranked 8" in crowded.metadata["replies_dropped_reason"]
    assert Item.objects.get(external_id="t-unranked/u0").reference is None


def test_reimporting_an_oasst_tree_skips_its_items(project, tmp_path):
    path = write_rows(tmp_path, [GARDEN_TREE, UNRANKED_TREE], "jsonl")
    items_import(project=project, path=path)

    again = items_import(project=project, path=path)

    assert (again.rows, again.imported, again.skipped_existing) == (2, 0, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_oasst_tree_without_a_two_reply_prompter_message_is_refused(project, tmp_path, fmt):
    lonely = tree(
        "t-lonely",
        message("l0", "prompter", "Hello?", replies=[message("l1", "assistant", "Hi.", rank=0)]),
    )

    message_text = rejected(project, write_rows(tmp_path, [GARDEN_TREE, lonely], fmt))

    assert "row 2: the message tree has no prompter message with 2 or more assistant replies" in message_text
    assert "nothing to compare" in message_text


def test_an_oasst_reply_with_an_unknown_role_is_named_by_its_path(project, tmp_path):
    broken = tree(
        "t-broken",
        message("b0", "prompter", "Q?", replies=[message("b1", "assistant", "A."), message("b2", "bot", "B.")]),
    )

    message_text = rejected(project, write_rows(tmp_path, [broken], "jsonl"))

    assert "row 1: `prompt.replies[1].role` must be 'prompter' or 'assistant' (got 'bot')" in message_text


def test_identical_oasst_replies_name_the_message(project, tmp_path):
    twins = tree(
        "t-twins",
        message(
            "c0", "prompter", "Q?", replies=[message("c1", "assistant", "Same."), message("c2", "assistant", "Same.")]
        ),
    )

    message_text = rejected(project, write_rows(tmp_path, [twins], "jsonl"))

    assert "row 1: at `prompt`: two responses are identical" in message_text


# -- K-way native rows ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_native_rows_with_up_to_eight_responses_keep_them_in_order(project, tmp_path, fmt):
    four = [{"model": f"model-{n}", "content": f"Answer {n}."} for n in range(4)]
    eight = [{"model": f"model-{n}", "content": f"Reply {n}."} for n in range(8)]
    rows = [
        {"id": "four", "prompt": "Pick one.", "responses": four},
        {"id": "eight", "prompt": "Pick another.", "responses": eight},
    ]

    report = items_import(project=project, path=write_rows(tmp_path, rows, fmt))

    assert (report.shape, report.imported) == ("native", 2)
    items = held(project)
    assert answers(items["four"]) == [(entry["model"], entry["content"]) for entry in four]
    assert answers(items["eight"]) == [(entry["model"], entry["content"]) for entry in eight]
    assert [response.position for response in items["eight"].responses.all()] == list(range(8))
    assert items["four"].reference is None
