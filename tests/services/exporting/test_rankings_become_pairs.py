"""Exporting K-way rankings: every strictly ordered pair is a preference row with its rank gap."""

from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from labeling.models import Project
from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.judgments import judgment_submit
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

ANSWERS = ["Answer zero.", "Answer one.", "Answer two.", "Answer three."]
MODELS = ["model-a", "model-b", "model-c", "model-d"]


def ranking_project(overlap: int, mode=Project.Mode.RANKING):
    project = ProjectFactory(slug=f"rank-{overlap}-{mode}", overlap=overlap, mode=mode)
    annotators = [MembershipFactory(project=project, user__username=f"ranker-{n}").user for n in range(overlap)]
    return project, annotators


def rank(project, annotator, item, positions: list[list[int]]):
    """`annotator` takes the next item (it must be `item`) and ranks its responses, given by position, best first."""
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment.item_id == item.pk
    pk = dict(item.responses.values_list("position", "id"))
    ranking = [[pk[position] for position in group] for group in positions]
    _, created = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    assert created


def export(project, out: Path, **options):
    report = preferences_export(project=project, out_dir=out, options=ExportOptions(**options))
    return report, datasets.load_from_disk(str(out))["train"]


def pairs(train) -> dict[tuple[str, str], dict]:
    """Rows by (chosen model, rejected model)."""
    return {(row["chosen_model"], row["rejected_model"]): row for row in train}


@pytest.fixture
def four_way(db):
    """One item with four responses, ranked by one annotator with a tie: a > b = c > d."""
    project, (annotator,) = ranking_project(1)
    item = ItemFactory(project=project, external_id="four", responses=ANSWERS)
    rank(project, annotator, item, [[0], [1, 2], [3]])
    return project


def test_a_four_way_ranking_with_a_tie_exports_every_strict_pair(four_way, tmp_path):
    report, train = export(four_way, tmp_path / "export")

    rows = pairs(train)
    assert sorted(rows) == [
        ("model-a", "model-b"),
        ("model-a", "model-c"),
        ("model-a", "model-d"),
        ("model-b", "model-d"),
        ("model-c", "model-d"),
    ]  # six pairs, less the tie b = c
    assert {pair: row["rank_gap"] for pair, row in rows.items()} == {
        ("model-a", "model-b"): 1,
        ("model-a", "model-c"): 1,
        ("model-a", "model-d"): 2,
        ("model-b", "model-d"): 1,
        ("model-c", "model-d"): 1,
    }
    assert rows[("model-a", "model-d")]["chosen"] == [{"role": "assistant", "content": "Answer zero."}]
    assert rows[("model-a", "model-d")]["rejected"] == [{"role": "assistant", "content": "Answer three."}]
    assert all((row["votes"], row["agreement"], row["item_id"]) == (1, 1.0, "four") for row in train)
    counts = report.counts
    assert (counts.pairs, counts.exported, counts.tied, counts.split) == (6, 5, 1, 0)


def test_ranking_exports_add_rank_gap_after_agreement_and_keep_margin_last(four_way, tmp_path):
    _, train = export(four_way, tmp_path / "export", margin=True)

    assert train.column_names == [
        "prompt",
        "chosen",
        "rejected",
        "item_id",
        "chosen_model",
        "rejected_model",
        "votes",
        "agreement",
        "rank_gap",
        "margin",
    ]
    assert pa.types.is_integer(train.data.schema.field("rank_gap").type)


def test_the_dataset_card_lists_rank_gap(four_way, tmp_path):
    export(four_way, tmp_path / "export")

    card = (tmp_path / "export" / "README.md").read_text()
    assert "- `rank_gap` (integer) — ranking projects only: how many places apart" in card


def test_standard_style_ranking_export_is_text_with_rank_gap(four_way, tmp_path):
    _, train = export(four_way, tmp_path / "export", style="standard")

    row = pairs(train)[("model-a", "model-d")]
    assert row["chosen"] == " Answer zero." and row["rejected"] == " Answer three."
    assert row["prompt"].endswith("\n\nAssistant:")
    assert row["rank_gap"] == 2


@pytest.mark.parametrize("config", ["raw", "unpaired"])
def test_raw_and_unpaired_ranking_exports_have_no_rank_gap(four_way, tmp_path, config):
    _, train = export(four_way, tmp_path / "export", config=config)

    assert "rank_gap" not in train.column_names
    assert train.num_rows == (1 if config == "raw" else 10)


def test_pairwise_projects_export_no_rank_gap(db, tmp_path):
    project, (annotator,) = ranking_project(1, mode=Project.Mode.PAIRWISE)
    item = ItemFactory(project=project, external_id="pair")
    rank(project, annotator, item, [[1], [0]])

    _, train = export(project, tmp_path / "export", margin=True)

    assert "rank_gap" not in train.column_names
    assert train.column_names[-1] == "margin"


@pytest.fixture
def panel_of_three(db):
    """Three annotators rank one four-response item:

    a > b = c > d,   a > b > c > d,   b > a > d > c
    """
    project, annotators = ranking_project(3)
    item = ItemFactory(project=project, external_id="panel", responses=ANSWERS)
    for annotator, ranking in zip(
        annotators, ([[0], [1, 2], [3]], [[0], [1], [2], [3]], [[1], [0], [3], [2]]), strict=True
    ):
        rank(project, annotator, item, ranking)
    return project


def test_majority_rank_gap_is_the_median_gap_of_the_agreeing_votes(panel_of_three, tmp_path):
    report, train = export(panel_of_three, tmp_path / "export")

    rows = pairs(train)
    summary = {pair: (row["rank_gap"], round(row["agreement"], 3)) for pair, row in rows.items()}
    assert summary == {
        ("model-a", "model-b"): (1, 0.667),  # gaps 1, 1 (the third vote disagrees)
        ("model-a", "model-c"): (2, 1.0),  # gaps 1, 2, 2
        ("model-a", "model-d"): (2, 1.0),  # gaps 2, 3, 1
        ("model-b", "model-c"): (1, 0.667),  # gaps 1, 3 and one tie: the lower middle value
        ("model-b", "model-d"): (2, 1.0),  # gaps 1, 2, 2
        ("model-c", "model-d"): (1, 0.667),  # gaps 1, 1
    }
    assert all(row["votes"] == 3 for row in train)
    assert (report.counts.exported, report.counts.tied) == (6, 0)


def test_all_policy_gives_each_vote_its_own_rank_gap(panel_of_three, tmp_path):
    _, train = export(panel_of_three, tmp_path / "export", aggregate="all")

    gaps: dict[tuple[str, str], list[int]] = {}
    for row in train:
        gaps.setdefault((row["chosen_model"], row["rejected_model"]), []).append(row["rank_gap"])
    assert {pair: sorted(values) for pair, values in gaps.items()} == {
        ("model-a", "model-b"): [1, 1],
        ("model-b", "model-a"): [1],
        ("model-a", "model-c"): [1, 2, 2],
        ("model-a", "model-d"): [1, 2, 3],
        ("model-b", "model-c"): [1, 3],
        ("model-b", "model-d"): [1, 2, 2],
        ("model-c", "model-d"): [1, 1],
        ("model-d", "model-c"): [1],
    }
    assert train.num_rows == 17  # 3 rankings x 6 pairs, less the one tie
