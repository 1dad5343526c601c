"""Importing items: every row shape in every file format, and bad input that imports nothing."""

import json
import re
from pathlib import Path

import datasets
import pandas as pd
import pytest

from labeling.models import Item
from labeling.services.errors import InvalidInput
from labeling.services.importing import ImportRejected, items_import


@pytest.fixture(autouse=True, params=["in-thread", "in-process"])
def parsed_where(request, settings):
    """Every test here runs twice: the file read in the importing thread (small files) and in
    the parsing process (large files), which must import, refuse and report alike."""
    if request.param == "in-process":
        settings.LABELING_IMPORT_PROCESS_MIN_BYTES = 0
    return request.param


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def system(content):
    return {"role": "system", "content": content}


GIFT_CONTEXT = "\n\nHuman: I need a gift idea.\n\nAssistant: Who is it for?\n\nHuman: My aunt, she gardens."

# Each shape: rows as a user's tooling writes them, the shape the importer should report,
# and per row what the project should hold: (external id or None for a content hash, prompt,
# [(model, content), ...] in row order, hidden reference).
SHAPES = {
    "native_text": (
        [
            {
                "id": "n-1",
                "prompt": "What is the boiling point of water?",
                "responses": ["100 °C at sea level.", "90 °C."],
            },
            {"id": "n-2", "prompt": "Name a prime number.", "responses": ["7", "8", "11"]},
        ],
        "native",
        [
            (
                "n-1",
                [user("What is the boiling point of water?")],
                [("", "100 °C at sea level."), ("", "90 °C.")],
                None,
            ),
            ("n-2", [user("Name a prime number.")], [("", "7"), ("", "8"), ("", "11")], None),
        ],
    ),
    "native_messages": (
        [
            {
                "id": "m-1",
                "prompt": [system("You are terse."), user("Capital of France?")],
                "responses": [{"model": "big-7b", "content": "Paris."}, {"model": "small-1b", "content": "Lyon."}],
            },
            {
                "id": "m-2",
                "prompt": [user("Hi!"), assistant("Hello. How can I help?"), user("Spell 'cat' backwards.")],
                "responses": [{"model": "big-7b", "content": "tac"}, {"model": "small-1b", "content": "atc"}],
            },
        ],
        "native",
        [
            (
                "m-1",
                [system("You are terse."), user("Capital of France?")],
                [("big-7b", "Paris."), ("small-1b", "Lyon.")],
                None,
            ),
            (
                "m-2",
                [user("Hi!"), assistant("Hello. How can I help?"), user("Spell 'cat' backwards.")],
                [("big-7b", "tac"), ("small-1b", "atc")],
                None,
            ),
        ],
    ),
    "flat_pair": (
        [
            {"id": "f-1", "prompt": "2 + 2?", "response_a": "4", "response_b": "5", "model_a": "m-a", "model_b": "m-b"},
            {"id": "f-2", "prompt": "3 + 3?", "response_a": "7", "response_b": "6", "model_a": "m-b", "model_b": "m-a"},
        ],
        "flat_pair",
        [
            ("f-1", [user("2 + 2?")], [("m-a", "4"), ("m-b", "5")], None),
            ("f-2", [user("3 + 3?")], [("m-b", "7"), ("m-a", "6")], None),
        ],
    ),
    "trl_standard": (
        [
            {"id": "t-1", "prompt": "Translate 'cat' to French.", "chosen": "chat", "rejected": "chien"},
            {
                # A prompt written in TRL's standard style, as our own exporter writes it.
                "id": "t-2",
                "prompt": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Translate 'dog' to French.\n\nAssistant:",
                "chosen": " chien",
                "rejected": " chat",
            },
        ],
        "trl_preference",
        [
            ("t-1", [user("Translate 'cat' to French.")], [("", "chat"), ("", "chien")], [[0], [1]]),
            (
                "t-2",
                [user("Hi"), assistant("Hello!"), user("Translate 'dog' to French.")],
                [("", "chien"), ("", "chat")],
                [[0], [1]],
            ),
        ],
    ),
    "trl_conversational": (
        [
            {
                "id": "c-1",
                "prompt": [user("Is the sky blue?")],
                "chosen": [assistant("Yes, on a clear day.")],
                "rejected": [assistant("No.")],
                "chosen_model": "big-7b",
                "rejected_model": "small-1b",
            },
            {
                "id": "c-2",
                "prompt": [system("Answer briefly."), user("Is grass green?")],
                "chosen": [assistant("Usually.")],
                "rejected": [assistant("Never.")],
                "chosen_model": "small-1b",
                "rejected_model": "big-7b",
            },
        ],
        "trl_preference",
        [
            ("c-1", [user("Is the sky blue?")], [("big-7b", "Yes, on a clear day."), ("small-1b", "No.")], [[0], [1]]),
            (
                "c-2",
                [system("Answer briefly."), user("Is grass green?")],
                [("small-1b", "Usually."), ("big-7b", "Never.")],
                [[0], [1]],
            ),
        ],
    ),
    "hh_rlhf": (
        [
            {
                "chosen": GIFT_CONTEXT + "\n\nAssistant: A good pair of pruning shears.",
                "rejected": GIFT_CONTEXT + "\n\nAssistant: Socks.",
            },
            {
                "chosen": "\n\nHuman: What rhymes with moon?\n\nAssistant: June, tune and spoon.",
                "rejected": "\n\nHuman: What rhymes with moon?\n\nAssistant: Sun.",
            },
        ],
        "hh_rlhf",
        [
            (
                None,
                [user("I need a gift idea."), assistant("Who is it for?"), user("My aunt, she gardens.")],
                [("", "A good pair of pruning shears."), ("", "Socks.")],
                [[0], [1]],
            ),
            (None, [user("What rhymes with moon?")], [("", "June, tune and spoon."), ("", "Sun.")], [[0], [1]]),
        ],
    ),
    "trl_implicit_prompt": (
        [
            {
                "chosen": [user("Say hi in Spanish."), assistant("Hola.")],
                "rejected": [user("Say hi in Spanish."), assistant("Bonjour.")],
            },
            {
                "chosen": [system("Be kind."), user("Say bye in German."), assistant("Tschüss.")],
                "rejected": [system("Be kind."), user("Say bye in German."), assistant("Ciao.")],
            },
        ],
        "hh_rlhf",
        [
            (None, [user("Say hi in Spanish.")], [("", "Hola."), ("", "Bonjour.")], [[0], [1]]),
            (None, [system("Be kind."), user("Say bye in German.")], [("", "Tschüss."), ("", "Ciao.")], [[0], [1]]),
        ],
    ),
}

FORMATS = ["jsonl", "json", "csv", "parquet", "save_to_disk", "dataset_dict", "hub"]


def write_rows(folder: Path, rows: list[dict], fmt: str) -> Path:
    """Write `rows` as the user's own tooling would, in one of the formats users bring."""
    if fmt == "jsonl":
        path = folder / "rows.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif fmt == "json":
        path = folder / "rows.json"
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    elif fmt == "csv":
        path = folder / "rows.csv"
        as_text = [{key: json.dumps(v) if isinstance(v, list | dict) else v for key, v in row.items()} for row in rows]
        pd.DataFrame(as_text).to_csv(path, index=False)
    elif fmt == "parquet":
        path = folder / "rows.parquet"
        pd.DataFrame(rows).to_parquet(path)
    elif fmt == "save_to_disk":
        path = folder / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    elif fmt == "dataset_dict":
        path = folder / "saved_dict"
        splits = {"train": datasets.Dataset.from_list(rows[:1]), "test": datasets.Dataset.from_list(rows[1:])}
        datasets.DatasetDict(splits).save_to_disk(str(path))
    elif fmt == "hub":
        path = folder / "hub"
        (path / "data").mkdir(parents=True)
        pd.DataFrame(rows).to_parquet(path / "data" / "train-00000-of-00001.parquet")
    else:
        raise AssertionError(fmt)
    return path


def stored(project) -> list[tuple]:
    items = Item.objects.filter(project=project).order_by("pk").prefetch_related("responses")
    return [
        (item.external_id, item.prompt, [(r.model, r.content) for r in item.responses.all()], item.reference)
        for item in items
    ]


def import_rejected(project, path, **kwargs) -> str:
    """Import `path` expecting a refusal; returns the message and checks nothing was written."""
    before = Item.objects.count()
    with pytest.raises(ImportRejected) as caught:
        items_import(project=project, path=path, **kwargs)
    assert Item.objects.count() == before
    return str(caught.value)


# -- every shape in every format ---------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_imports_from_each_format(project, tmp_path, shape, fmt):
    rows, shape_name, expected = SHAPES[shape]
    path = write_rows(tmp_path, rows, fmt)

    report = items_import(project=project, path=path)

    assert report.shape == shape_name
    assert (report.rows, report.imported, report.rejected_count) == (2, 2, 0)
    held = stored(project)
    assert [(prompt, responses, reference) for _, prompt, responses, reference in held] == [
        (prompt, responses, reference) for _, prompt, responses, reference in expected
    ]
    for (external_id, *_), (wanted_id, *_) in zip(held, expected, strict=True):
        if wanted_id is None:
            assert re.fullmatch(r"[0-9a-f]{20}", external_id)
        else:
            assert external_id == wanted_id


def test_imported_items_collect_the_projects_overlap_and_are_open(project, write_jsonl):
    items_import(project=project, path=write_jsonl([{"prompt": "Q?", "responses": ["yes", "no"]}]))

    item = Item.objects.get(project=project)
    assert item.target == project.overlap == 2
    assert (item.votes, item.filled, item.is_complete) == (0, 0, False)


def test_native_row_metadata_is_kept_on_item_and_responses(project, write_jsonl):
    row = {
        "id": "meta",
        "prompt": "Q?",
        "responses": [{"model": "a", "content": "yes", "metadata": {"temperature": 0.7}}, "no"],
        "metadata": {"topic": "science"},
    }
    items_import(project=project, path=write_jsonl([row]))

    item = Item.objects.get(external_id="meta")
    assert item.metadata == {"topic": "science"}
    assert [r.metadata for r in item.responses.all()] == [{"temperature": 0.7}, {}]


def test_a_json_object_with_a_data_array_is_read_like_an_array(project, tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": SHAPES["flat_pair"][0]}))

    assert items_import(project=project, path=path).imported == 2


def test_a_file_with_an_unknown_suffix_needs_a_format(project, tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text(json.dumps({"prompt": "Q?", "responses": ["yes", "no"]}) + "\n")

    with pytest.raises(InvalidInput, match=r"Cannot tell the format of 'rows.txt'.*--format"):
        items_import(project=project, path=path)
    assert items_import(project=project, path=path, fmt="jsonl").imported == 1


# -- bad input: a clear reason naming the row, and nothing imported ------------------


def good_row(n: int) -> dict:
    return {"id": f"good-{n}", "prompt": f"Question {n}?", "responses": [f"Yes {n}.", f"No {n}."]}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            {"id": "bad", "prompt": "Q?"},
            "columns ['id', 'prompt'] match no known shape: expected `prompt` + `responses` (native)",
            id="row-without-responses",
        ),
        pytest.param(
            {"prompt": "Q?", "response_a": "yes"},
            "columns ['prompt', 'response_a'] match no known shape",
            id="flat-pair-without-response_b",
        ),
        pytest.param({"prompt": "Q?", "responses": ["fine", "   "]}, "`responses[1]` is empty", id="empty-response"),
        pytest.param(
            {"prompt": "Q?", "responses": [{"model": "m", "content": ""}, "no"]},
            "`responses[0].content` is empty",
            id="empty-response-object",
        ),
        pytest.param(
            {"prompt": [user("Hi"), assistant("Hello")], "responses": ["yes", "no"]},
            "`prompt` must end with a user turn (it ends with assistant)",
            id="prompt-ends-with-assistant",
        ),
        pytest.param(
            {"prompt": "Q?", "responses": ["only"]}, "an item needs 2 to 8 responses (got 1)", id="one-response"
        ),
        pytest.param(
            {"prompt": "Q?", "responses": [f"answer {n}" for n in range(9)]},
            "an item needs 2 to 8 responses (got 9)",
            id="nine-responses",
        ),
        pytest.param({"prompt": "Q?\x00", "responses": ["yes", "no"]}, "`prompt` contains a NUL byte", id="nul-byte"),
        pytest.param({"prompt": "Q?", "responses": ["same", "same"]}, "two responses are identical", id="identical"),
        pytest.param(
            {"prompt": "Q?", "response_a": "yes", "response_b": "no"},
            "has the flat_pair shape but earlier rows have the native shape",
            id="mixed-shapes",
        ),
    ],
)
def test_an_invalid_row_is_named_with_its_reason_and_nothing_is_imported(project, items, write_jsonl, bad, reason):
    path = write_jsonl([good_row(1), bad, good_row(3)])

    message = import_rejected(project, path)

    assert "1 of 3 rows are invalid; nothing was imported" in message
    assert f"row 2: {reason}" in message
    assert not Item.objects.filter(external_id__startswith="good-").exists()


def test_malformed_jsonl_line_names_the_line_and_imports_nothing(project, tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [json.dumps(good_row(1)), "", json.dumps(good_row(3)), '{"prompt": "Q?", "responses": [', ""]
    path.write_text("\n".join(lines))

    message = import_rejected(project, path)

    assert "row 4: is not valid JSON" in message  # line 4, although the blank line means it is the 3rd row
    assert Item.objects.count() == 0


def test_a_jsonl_line_that_is_not_an_object_is_named(project, write_jsonl):
    message = import_rejected(project, write_jsonl([good_row(1), ["a", "list"]]))

    assert "row 2: is not a JSON object" in message


def test_over_long_text_is_refused_with_the_limit(project, write_jsonl, settings):
    settings.LABELING_MAX_TEXT_CHARS = 40
    path = write_jsonl([good_row(1), {"prompt": "Q?", "responses": ["x" * 41, "short"]}])

    message = import_rejected(project, path)

    assert "row 2: `responses[0]` has 41 characters, over the limit of 40" in message


def test_a_bad_row_after_the_first_batch_still_imports_nothing(project, write_jsonl):
    rows = [good_row(n) for n in range(1, 1201)] + [{"prompt": "Q?", "responses": ["only"]}]

    message = import_rejected(project, write_jsonl(rows))

    assert "row 1201: an item needs 2 to 8 responses (got 1)" in message
    assert Item.objects.count() == 0


def test_every_invalid_row_is_counted_and_the_list_is_capped(project, write_jsonl):
    rows = [{"prompt": f"Q{n}?", "responses": ["only"]} for n in range(150)]

    message = import_rejected(project, write_jsonl(rows))

    assert message.startswith("None of the 150 rows is valid")
    assert "row 100:" in message and "row 101:" not in message
    assert "... and 50 more" in message


def test_invalid_utf8_in_a_jsonl_line_names_the_line(project, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(json.dumps(good_row(1)).encode() + b'\n{"prompt": "caf\xe9", "responses": ["a", "b"]}\n')

    message = import_rejected(project, path)

    assert "row 2: is not valid UTF-8" in message


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_invalid_utf8_in_a_whole_file_format_is_refused(project, tmp_path, suffix):
    path = tmp_path / f"items.{suffix}"
    latin1 = {
        "json": b'[{"prompt": "caf\xe9", "responses": ["a", "b"]}]',
        "csv": b"prompt,response_a,response_b\ncaf\xe9,a,b\n",
    }
    path.write_bytes(latin1[suffix])

    with pytest.raises(InvalidInput, match=rf"'items\.{suffix}' is not valid UTF-8"):
        items_import(project=project, path=path)
    assert Item.objects.count() == 0


def test_a_file_that_does_not_exist_is_named(project, tmp_path):
    with pytest.raises(InvalidInput, match=r"nowhere\.jsonl' does not exist"):
        items_import(project=project, path=tmp_path / "nowhere.jsonl")


def test_an_empty_file_holds_no_rows(project, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")

    with pytest.raises(InvalidInput, match=r"'empty\.jsonl' holds no rows"):
        items_import(project=project, path=path)


def test_a_truncated_parquet_file_is_refused_and_imports_nothing(project, tmp_path):
    whole = write_rows(tmp_path, [good_row(n) for n in range(50)], "parquet")
    data = whole.read_bytes()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(data[: len(data) // 2])

    with pytest.raises(InvalidInput, match=r"'broken\.parquet' is not a readable Parquet file"):
        items_import(project=project, path=broken)
    assert Item.objects.count() == 0


def test_a_file_that_is_not_parquet_at_all_is_refused(project, tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("prompt,responses\n")

    with pytest.raises(InvalidInput, match=r"'fake\.parquet' is not a readable Parquet file"):
        items_import(project=project, path=path)


def test_a_folder_without_a_dataset_is_refused(project, tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")

    with pytest.raises(InvalidInput, match="neither a `save_to_disk` folder nor a Hub-layout folder"):
        items_import(project=project, path=tmp_path)


def test_invalid_rows_in_a_parquet_file_are_numbered(project, tmp_path):
    rows = [good_row(1), {"id": "bad", "prompt": "Q?", "responses": ["only"]}]
    path = write_rows(tmp_path, rows, "parquet")

    message = import_rejected(project, path)

    assert "row 2: an item needs 2 to 8 responses (got 1)" in message


# -- skip-invalid, dry run, re-import ------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("wrong.csv", "question,answer\nWhat?,This.\nWhy?,Because.\n"),  # columns of no known shape
        ("binary.jsonl", "\x00\x01\x02 not json\n\x7f\x03\n"),
    ],
)
def test_a_file_without_one_valid_row_is_refused_even_with_skip_invalid(project, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)

    with pytest.raises(ImportRejected, match=r"None of the 2 rows is valid; nothing was imported") as refused:
        items_import(project=project, path=path, skip_invalid=True)

    assert [number for number, _ in refused.value.report.rejected] == [1, 2]
    assert Item.objects.filter(project=project).count() == 0


def test_skip_invalid_imports_the_good_rows_and_reports_the_bad_ones(project, tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [
        json.dumps(good_row(1)),
        json.dumps({"prompt": "Q?", "responses": ["only"]}),
        json.dumps(good_row(3)),
        "{not json",
        json.dumps(good_row(5)),
    ]
    path.write_text("\n".join(lines) + "\n")

    report = items_import(project=project, path=path, skip_invalid=True)

    assert (report.rows, report.imported, report.rejected_count) == (5, 3, 2)
    assert [number for number, _ in report.rejected] == [2, 4]
    assert "needs 2 to 8 responses" in report.rejected[0][1]
    assert "is not valid JSON" in report.rejected[1][1]
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["good-1", "good-3", "good-5"]


def test_dry_run_validates_and_counts_but_writes_nothing(project, write_jsonl):
    report = items_import(project=project, path=write_jsonl([good_row(1), good_row(2)]), dry_run=True)

    assert report.dry_run
    assert (report.rows, report.imported, report.rejected_count) == (2, 2, 0)
    assert Item.objects.count() == 0


def test_dry_run_still_refuses_invalid_rows(project, write_jsonl):
    message = import_rejected(project, write_jsonl([good_row(1), {"prompt": "Q?"}]), dry_run=True)

    assert "row 2:" in message


def test_reimporting_the_same_file_skips_existing_ids_and_counts_them(project, write_jsonl):
    path = write_jsonl([good_row(1), good_row(2)])
    items_import(project=project, path=path)

    again = items_import(project=project, path=path)

    assert (again.imported, again.skipped_existing) == (0, 2)
    assert Item.objects.count() == 2


def test_a_grown_file_imports_only_its_new_rows(project, write_jsonl):
    items_import(project=project, path=write_jsonl([good_row(1), good_row(2)], name="first.jsonl"))

    report = items_import(project=project, path=write_jsonl([good_row(1), good_row(2), good_row(3)], name="more.jsonl"))

    assert (report.imported, report.skipped_existing) == (1, 2)
    assert Item.objects.count() == 3


def test_the_new_rows_between_known_ones_keep_their_own_responses(project, write_jsonl):
    items_import(project=project, path=write_jsonl([good_row(2), good_row(4)], name="first.jsonl"))

    report = items_import(project=project, path=write_jsonl([good_row(n) for n in range(1, 6)], name="all.jsonl"))

    assert (report.imported, report.skipped_existing) == (3, 2)
    stored = {
        item.external_id: (item.prompt[0]["content"], [r.content for r in item.responses.order_by("position")])
        for item in Item.objects.filter(project=project)
    }
    assert stored == {f"good-{n}": (f"Question {n}?", [f"Yes {n}.", f"No {n}."]) for n in range(1, 6)}


def test_rows_without_id_get_a_content_hash_so_a_reimport_dedupes(project, write_jsonl):
    rows = [{"prompt": "Q1?", "responses": ["a", "b"]}, {"prompt": "Q2?", "responses": ["a", "b"]}]
    path = write_jsonl(rows)
    items_import(project=project, path=path)
    first_ids = sorted(Item.objects.values_list("external_id", flat=True))

    again = items_import(project=project, path=path)

    assert len(set(first_ids)) == 2 and all(re.fullmatch(r"[0-9a-f]{20}", value) for value in first_ids)
    assert (again.imported, again.skipped_existing) == (0, 2)
    assert sorted(Item.objects.values_list("external_id", flat=True)) == first_ids


def test_the_content_hash_is_the_same_whatever_the_file_format(project, tmp_path):
    rows = [{"prompt": "Q1?", "response_a": "a", "response_b": "b"}]
    items_import(project=project, path=write_rows(tmp_path, rows, "jsonl"))

    report = items_import(project=project, path=write_rows(tmp_path, rows, "csv"))

    assert (report.imported, report.skipped_existing) == (0, 1)


def test_a_row_repeated_in_one_file_is_imported_once(project, write_jsonl):
    row = {"prompt": "Q?", "responses": ["a", "b"]}

    report = items_import(project=project, path=write_jsonl([row, row, good_row(3)]))

    assert (report.imported, report.skipped_duplicate) == (2, 1)
    assert Item.objects.count() == 2


def test_the_same_ids_in_another_project_are_not_existing(project, other_project, write_jsonl):
    path = write_jsonl([good_row(1)])
    items_import(project=project, path=path)

    report = items_import(project=other_project, path=path)

    assert (report.imported, report.skipped_existing) == (1, 0)
    assert Item.objects.get(project=other_project).target == 1


# -- known gaps ------------------------------------------------------------------


def test_a_csv_metadata_column_of_json_objects_is_imported(project, tmp_path):
    rows = [{"id": "x", "prompt": "Q?", "responses": ["yes", "no"], "metadata": {"topic": "science"}}]

    items_import(project=project, path=write_rows(tmp_path, rows, "csv"))

    assert Item.objects.get(external_id="x").metadata == {"topic": "science"}


def test_a_csv_response_that_looks_like_a_json_list_stays_text(project, tmp_path):
    rows = [{"id": "x", "prompt": "sorted([3, 1, 2])?", "response_a": "[1, 2, 3]", "response_b": "[3, 2, 1]"}]

    items_import(project=project, path=write_rows(tmp_path, rows, "csv"))

    assert [r.content for r in Item.objects.get(external_id="x").responses.all()] == ["[1, 2, 3]", "[3, 2, 1]"]


def test_a_damaged_save_to_disk_folder_is_refused_clearly(project, tmp_path):
    path = write_rows(tmp_path, [good_row(1)], "save_to_disk")
    for arrow_file in path.glob("*.arrow"):
        arrow_file.write_bytes(b"garbage")

    with pytest.raises(InvalidInput, match="saved"):
        items_import(project=project, path=path)


def test_a_jsonl_file_with_a_byte_order_mark_is_read(project, tmp_path):
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(good_row(1)).encode() + b"\r\n")

    assert items_import(project=project, path=path).imported == 1


def test_a_large_import_leaves_the_planner_statistics_current(project, write_jsonl, django_capture_on_commit_callbacks):
    """PostgreSQL plans the first claims after an import from the statistics it has: stale ones
    (an empty table) read every open item per claim until someone runs ANALYZE."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps no planner statistics unless asked")
    rows = [{"id": f"q{n}", "prompt": f"Question {n}?", "response_a": "Yes.", "response_b": "No."} for n in range(2000)]
    with django_capture_on_commit_callbacks(execute=True):
        items_import(project=project, path=write_jsonl(rows))
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname LIKE 'labeling_%' AND relkind = 'r'")
        tuples = dict(cursor.fetchall())
    assert (tuples["labeling_item"], tuples["labeling_response"]) == (2000, 4000)
