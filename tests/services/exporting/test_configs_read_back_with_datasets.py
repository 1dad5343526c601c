"""Exporting preferences: judgments made through the real services, read back with `datasets`."""

import json
import math
from pathlib import Path

import datasets
import pyarrow as pa
import pytest
import yaml

from labeling.models import Assignment, Item, Judgment
from labeling.services.assignment import assignment_next
from labeling.services.errors import InvalidInput
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.importing import items_import
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

USERNAMES = ("ulla-rater", "vic-rater", "wim-rater")
# Columns TRL treats as vision, tokenized or tool-calling data; a text preference export has none.
FOREIGN_COLUMNS = {
    "image",
    "images",
    "chosen_ids",
    "rejected_ids",
    "prompt_ids",
    "chosen_input_ids",
    "rejected_input_ids",
    "tools",
    "chat_template_kwargs",
}


@pytest.fixture
def panel(db):
    """A project wanting three judgments per item, and its three annotators."""
    project = ProjectFactory(slug="gamma", overlap=3)
    annotators = [MembershipFactory(project=project, user__username=name).user for name in USERNAMES]
    return project, annotators


def judge(project, annotator, item, prefer, strength=None):
    """`annotator` takes the next item (it must be `item`) and prefers the response at position
    `prefer` (0 or 1), or says "tie", pressing whichever side it was shown on."""
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment.item_id == item.pk
    if prefer == "tie":
        choice = "tie"
    else:
        wanted = item.responses.get(position=prefer).pk
        choice = "A" if assignment.shown_order[0] == wanted else "B"
    ranking = ranking_from_choice(assignment=assignment, choice=choice)
    judgment, created = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking, strength=strength
    )
    assert created
    return judgment


def content(item_id: str, position: int) -> str:
    """What ItemFactory writes as the response at `position`."""
    return f"Answer {['one', 'two'][position]} to {item_id}"


@pytest.fixture
def judged(panel):
    """Four items judged through the services:

    agree      first, first, second  -> 2 of 3 prefer the first response
    unanimous  second x3             -> every vote prefers the second response
    tie        tie, tie, first       -> most votes are ties
    split      first, second         -> one vote each way (only two annotators)
    """
    project, annotators = panel
    plan = {
        "agree": [0, 0, 1],
        "unanimous": [1, 1, 1],
        "tie": ["tie", "tie", 0],
        "split": [0, 1],
    }
    for external_id, votes in plan.items():
        item = ItemFactory(project=project, external_id=external_id)
        for annotator, prefer in zip(annotators, votes, strict=False):
            judge(project, annotator, item, prefer)
    return project


def export(project, out: Path, **options):
    return preferences_export(project=project, out_dir=out, options=ExportOptions(**options))


def by_item(rows) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["item_id"], []).append(row)
    return grouped


def is_message_list(arrow_type) -> bool:
    """list<struct<role: string, content: string>>: a list of message structs, not a struct of lists."""
    return (
        pa.types.is_list(arrow_type)
        and pa.types.is_struct(arrow_type.value_type)
        and [field.name for field in arrow_type.value_type] == ["role", "content"]
        and all(pa.types.is_string(field.type) for field in arrow_type.value_type)
    )


def assert_trl_conversational(split):
    schema = split.data.schema
    for column in ("prompt", "chosen", "rejected"):
        assert is_message_list(schema.field(column).type), column
    for column in ("item_id", "chosen_model", "rejected_model"):
        assert pa.types.is_string(schema.field(column).type), column
    assert pa.types.is_integer(schema.field("votes").type)
    assert pa.types.is_floating(schema.field("agreement").type)
    assert not FOREIGN_COLUMNS & set(split.column_names)
    for row in split:
        assert row["prompt"] and all(set(message) == {"role", "content"} for message in row["prompt"])
        assert row["prompt"][-1]["role"] == "user"
        for column in ("chosen", "rejected"):
            assert len(row[column]) == 1 and row[column][0]["role"] == "assistant", column
        assert isinstance(row["item_id"], str)
        assert isinstance(row["chosen_model"], str) and isinstance(row["rejected_model"], str)
        assert isinstance(row["votes"], int) and isinstance(row["agreement"], float)


# -- formats and column types -------------------------------------------------------


def test_save_to_disk_export_is_trl_conversational(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out)

    loaded = datasets.load_from_disk(str(out))

    assert list(loaded) == ["train"]
    assert_trl_conversational(loaded["train"])
    assert loaded["train"].column_names == [
        "prompt",
        "chosen",
        "rejected",
        "item_id",
        "chosen_model",
        "rejected_model",
        "votes",
        "agreement",
    ]
    assert loaded["train"].features["prompt"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )


def test_parquet_export_is_hub_layout_and_loads_with_load_dataset(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, fmt="parquet")

    assert (out / "data" / "train-00000-of-00001.parquet").is_file()
    loaded = datasets.load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path / "hf-cache"))

    assert list(loaded) == ["train"]
    assert loaded["train"].num_rows == 2
    assert_trl_conversational(loaded["train"])


def test_parquet_export_writes_a_dataset_card_with_yaml_header_and_guidelines(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, fmt="parquet")

    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "cc-by-4.0"
    assert {"dpo", "rlhf", "human-feedback", "preference"} <= set(header["tags"])
    assert header["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert "Pick the **better** answer." in card


def test_jsonl_export_writes_one_message_list_row_per_line(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, fmt="jsonl")

    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]

    assert sorted(row["item_id"] for row in rows) == ["agree", "unanimous"]
    for row in rows:
        assert row["prompt"][-1]["role"] == "user"
        assert [message["role"] for message in row["chosen"]] == ["assistant"]
        assert [message["role"] for message in row["rejected"]] == ["assistant"]
    assert (out / "README.md").is_file()


def test_standard_style_writes_human_assistant_text(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, style="standard")

    train = datasets.load_from_disk(str(out))["train"]

    for column in ("prompt", "chosen", "rejected"):
        assert pa.types.is_string(train.data.schema.field(column).type)
    row = by_item(train)["agree"][0]
    assert row["prompt"] == f"\n\nHuman: {Item.objects.get(external_id='agree').prompt[0]['content']}\n\nAssistant:"
    assert row["chosen"] == " " + content("agree", 0)
    assert row["rejected"] == " " + content("agree", 1)


def test_export_names_no_vision_tokenized_or_tool_columns(judged, tmp_path):
    variants = [
        {"margin": True},
        {"style": "standard", "margin": True},
        {"config": "unpaired"},
        {"config": "raw"},
    ]
    for number, options in enumerate(variants):
        out = tmp_path / f"export-{number}"
        export(judged, out, **options)
        train = datasets.load_from_disk(str(out))["train"]
        assert not FOREIGN_COLUMNS & set(train.column_names), options


# -- what is chosen ---------------------------------------------------------------


def test_chosen_is_the_response_the_annotators_preferred(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out)

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    assert rows["agree"][0]["chosen"][0]["content"] == content("agree", 0)
    assert rows["agree"][0]["rejected"][0]["content"] == content("agree", 1)
    assert (rows["agree"][0]["chosen_model"], rows["agree"][0]["rejected_model"]) == ("model-a", "model-b")
    assert rows["unanimous"][0]["chosen"][0]["content"] == content("unanimous", 1)
    assert (rows["unanimous"][0]["chosen_model"], rows["unanimous"][0]["rejected_model"]) == ("model-b", "model-a")
    assert rows["agree"][0]["prompt"] == Item.objects.get(external_id="agree").prompt


@pytest.mark.parametrize("side", ["A", "B"])
def test_chosen_follows_the_response_not_the_side_it_was_shown_on(panel, tmp_path, side):
    """Everyone presses the same side; the responses behind it vary with the shuffled order."""
    project, annotators = panel
    items = ItemFactory.create_batch(6, project=project)
    for item in items:
        for annotator in annotators:
            assignment = assignment_next(project=project, annotator=annotator)
            assert assignment.item_id == item.pk
            ranking = ranking_from_choice(assignment=assignment, choice=side)
            judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    preferred_votes: dict[int, dict[int, int]] = {}
    for assignment in Assignment.objects.filter(project=project):
        preferred = assignment.shown_order[0 if side == "A" else 1]
        votes = preferred_votes.setdefault(assignment.item_id, {})
        votes[preferred] = votes.get(preferred, 0) + 1
    out = tmp_path / "export"
    export(project, out)

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    assert len(rows) == 6  # three votes on two responses always leave a majority
    for item in items:
        winner = max(preferred_votes[item.pk], key=preferred_votes[item.pk].get)
        (row,) = rows[item.external_id]
        assert row["chosen"][0]["content"] == item.responses.get(pk=winner).content
        assert row["agreement"] == pytest.approx(preferred_votes[item.pk][winner] / 3)


# -- aggregation ------------------------------------------------------------------


def test_majority_exports_two_of_three_and_leaves_out_ties_and_splits(judged, tmp_path):
    out = tmp_path / "export"
    report = export(judged, out)

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    assert sorted(rows) == ["agree", "unanimous"]
    agree = rows["agree"][0]
    assert agree["votes"] == 3
    assert agree["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert (rows["unanimous"][0]["votes"], rows["unanimous"][0]["agreement"]) == (3, 1.0)
    counts = report.counts
    assert (counts.pairs, counts.exported, counts.tied, counts.split, counts.below_agreement) == (4, 2, 1, 1, 0)
    assert report.rows == {"train": 2}
    assert (report.items, report.judgments) == (4, 11)
    card = (out / "README.md").read_text()
    assert "considered: 4; exported: 2; left out as ties: 1;" in card
    assert "left out as split votes: 1;" in card


def test_unanimous_drops_pairs_without_every_vote(judged, tmp_path):
    out = tmp_path / "export"
    report = export(judged, out, aggregate="unanimous")

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    assert sorted(rows) == ["unanimous"]
    assert (report.counts.exported, report.counts.tied, report.counts.split) == (1, 1, 2)


def test_all_gives_one_row_per_strict_vote(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, aggregate="all")

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    chosen = {item_id: sorted(row["chosen"][0]["content"] for row in group) for item_id, group in rows.items()}
    assert chosen == {
        "agree": sorted([content("agree", 0), content("agree", 0), content("agree", 1)]),
        "unanimous": [content("unanimous", 1)] * 3,
        "tie": [content("tie", 0)],
        "split": sorted([content("split", 0), content("split", 1)]),
    }


def test_min_agreement_leaves_out_weaker_majorities(judged, tmp_path):
    out = tmp_path / "export"
    report = export(judged, out, min_agreement=0.8)

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    assert sorted(rows) == ["unanimous"]
    assert report.counts.below_agreement == 1


@pytest.mark.parametrize(
    "options",
    [{"config": "paired"}, {"style": "chatml"}, {"aggregate": "mean"}, {"fmt": "csv"}, {"test_size": 1.0}],
)
def test_unknown_options_are_refused_before_anything_is_written(judged, tmp_path, options):
    out = tmp_path / "export"

    with pytest.raises(InvalidInput):
        export(judged, out, **options)
    assert list(tmp_path.iterdir()) == []


# -- margin, splits ---------------------------------------------------------------


def test_margin_adds_a_finite_float_on_every_row(panel, tmp_path):
    project, annotators = panel
    for external_id, strengths in {"strong": (3, 3, 1), "weak": (1, 1, 1)}.items():
        item = ItemFactory(project=project, external_id=external_id)
        for annotator, strength in zip(annotators, strengths, strict=True):
            judge(project, annotator, item, 0, strength=strength)
    out = tmp_path / "export"
    export(project, out, margin=True)

    train = datasets.load_from_disk(str(out))["train"]

    assert train.column_names[-1] == "margin"
    assert pa.types.is_floating(train.data.schema.field("margin").type)
    margins = {row["item_id"]: row["margin"] for row in train}
    assert all(isinstance(value, float) and math.isfinite(value) and value > 0 for value in margins.values())
    assert margins["strong"] > margins["weak"]


def test_without_margin_there_is_no_margin_column(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out)

    assert "margin" not in datasets.load_from_disk(str(out))["train"].column_names


@pytest.fixture
def many_judged(panel):
    """Ten items, each judged by all three annotators (first, first, second)."""
    project, annotators = panel
    for item in ItemFactory.create_batch(10, project=project):
        for annotator, prefer in zip(annotators, (0, 0, 1), strict=True):
            judge(project, annotator, item, prefer)
    return project


def split_items(out: Path) -> dict[str, list[str]]:
    loaded = datasets.load_from_disk(str(out))
    return {name: list(split["item_id"]) for name, split in loaded.items()}


def test_test_split_is_grouped_by_item(many_judged, tmp_path):
    out = tmp_path / "export"
    report = export(many_judged, out, aggregate="all", test_size=0.5, seed=3)

    splits = split_items(out)

    assert sorted(splits) == ["test", "train"]
    assert not set(splits["train"]) & set(splits["test"])
    assert len(set(splits["train"])) == len(set(splits["test"])) == 5
    assert len(splits["train"]) + len(splits["test"]) == 30  # every strict vote, in one split or the other
    assert report.rows == {"train": len(splits["train"]), "test": len(splits["test"])}


def test_the_same_seed_gives_the_same_split(many_judged, tmp_path):
    export(many_judged, tmp_path / "first", test_size=0.5, seed=11)
    export(many_judged, tmp_path / "second", test_size=0.5, seed=11)

    assert split_items(tmp_path / "first") == split_items(tmp_path / "second")


def test_another_seed_may_give_another_split(many_judged, tmp_path):
    test_sets = set()
    for seed in range(6):
        export(many_judged, tmp_path / f"seed-{seed}", test_size=0.5, seed=seed)
        test_sets.add(frozenset(split_items(tmp_path / f"seed-{seed}")["test"]))

    assert len(test_sets) > 1


def test_parquet_export_with_a_test_split_writes_both_files_and_lists_them(many_judged, tmp_path):
    out = tmp_path / "export"
    export(many_judged, out, fmt="parquet", test_size=0.5, seed=1)

    assert (out / "data" / "train-00000-of-00001.parquet").is_file()
    assert (out / "data" / "test-00000-of-00001.parquet").is_file()
    loaded = datasets.load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded) == ["test", "train"]
    header = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert header["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-*"},
        {"split": "test", "path": "data/test-*"},
    ]


# -- other configs ----------------------------------------------------------------


def test_raw_config_has_one_row_per_judgment_with_pseudonymous_annotators(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, config="raw")

    train = datasets.load_from_disk(str(out))["train"]

    assert sorted(train["judgment_id"]) == sorted(str(pk) for pk in Judgment.objects.values_list("pk", flat=True))
    assert len(set(train["annotator"])) == 3
    assert all(name.startswith("annotator-") for name in train["annotator"])
    every_file = b"".join(path.read_bytes() for path in out.rglob("*") if path.is_file())
    for username in USERNAMES:
        assert username.encode() not in every_file


def test_raw_rankings_name_responses_and_models(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, config="raw")

    rows = by_item(datasets.load_from_disk(str(out))["train"])

    tie_rankings = sorted(len(row["ranking"]) for row in rows["tie"])
    assert tie_rankings == [1, 1, 2]  # two ties (one group of two) and one strict vote
    for row in rows["unanimous"]:
        assert row["ranking_models"] == [["model-b"], ["model-a"]]
        assert sorted(row["shown_order"]) == sorted(pk for group in row["ranking"] for pk in group)


def test_the_pseudonym_is_stable_across_exports(judged, tmp_path):
    export(judged, tmp_path / "first", config="raw")
    export(judged, tmp_path / "second", config="raw")

    first = datasets.load_from_disk(str(tmp_path / "first"))["train"]
    second = datasets.load_from_disk(str(tmp_path / "second"))["train"]
    assert dict(zip(first["judgment_id"], first["annotator"], strict=True)) == dict(
        zip(second["judgment_id"], second["annotator"], strict=True)
    )


def test_unpaired_config_has_two_labelled_completions_per_preference(judged, tmp_path):
    out = tmp_path / "export"
    export(judged, out, config="unpaired")

    train = datasets.load_from_disk(str(out))["train"]

    assert {"prompt", "completion", "label"} <= set(train.column_names)
    assert pa.types.is_boolean(train.data.schema.field("label").type)
    assert is_message_list(train.data.schema.field("completion").type)
    labelled = {(row["item_id"], row["completion"][0]["content"], row["label"]) for row in train}
    assert labelled == {
        ("agree", content("agree", 0), True),
        ("agree", content("agree", 1), False),
        ("unanimous", content("unanimous", 1), True),
        ("unanimous", content("unanimous", 0), False),
    }
    assert train.num_rows == 4


# -- where it is written, and what is left out -----------------------------------


def test_exporting_into_a_non_empty_folder_is_refused_and_writes_nothing(judged, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    with pytest.raises(InvalidInput, match="already exists and is not empty"):
        export(judged, out)

    assert [path.name for path in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert [path.name for path in tmp_path.iterdir()] == ["export"]  # no staging folder left behind


def test_exporting_onto_a_file_is_refused(judged, tmp_path):
    out = tmp_path / "export"
    out.write_text("a file")

    with pytest.raises(InvalidInput, match="already exists"):
        export(judged, out)
    assert out.read_text() == "a file"


def test_exporting_into_an_existing_empty_folder_is_fine(judged, tmp_path):
    out = tmp_path / "export"
    out.mkdir()

    export(judged, out)

    assert datasets.load_from_disk(str(out))["train"].num_rows == 2
    assert [path.name for path in tmp_path.iterdir()] == ["export"]


def test_gold_items_are_left_out_unless_asked_for(judged, tmp_path):
    Item.objects.filter(project=judged, external_id="unanimous").update(is_gold=True)

    export(judged, tmp_path / "without")
    export(judged, tmp_path / "with", include_gold=True)

    assert split_items(tmp_path / "without") == {"train": ["agree"]}
    assert sorted(split_items(tmp_path / "with")["train"]) == ["agree", "unanimous"]


def test_only_this_projects_judgments_are_exported(judged, project, annotator, tmp_path):
    other = ItemFactory(project=project, external_id="elsewhere")
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment.item_id == other.pk
    judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    out = tmp_path / "export"

    report = export(judged, out)

    assert report.judgments == 11
    assert "elsewhere" not in split_items(out)["train"]


# -- known gaps ------------------------------------------------------------------


def test_an_export_where_every_pair_is_left_out_writes_an_empty_split(panel, tmp_path):
    project, annotators = panel
    item = ItemFactory(project=project, external_id="split")
    judge(project, annotators[0], item, 0)
    judge(project, annotators[1], item, 1)
    out = tmp_path / "export"

    report = export(project, out)

    assert report.counts.split == 1
    train = datasets.load_from_disk(str(out))["train"]
    assert train.num_rows == 0
    assert "chosen" in train.column_names


def test_an_export_imports_back_as_trl_preference_rows(judged, other_project, tmp_path):
    out = tmp_path / "export"
    export(judged, out)

    report = items_import(project=other_project, path=out)

    assert (report.shape, report.imported) == ("trl_preference", 2)
    agree = Item.objects.get(project=other_project, prompt=Item.objects.get(external_id="agree").prompt)
    assert [(r.model, r.content) for r in agree.responses.all()] == [
        ("model-a", content("agree", 0)),
        ("model-b", content("agree", 1)),
    ]
    assert agree.reference == [[0], [1]]
