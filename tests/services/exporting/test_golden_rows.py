"""Export rows and features, compared with a stored snapshot for every config on a small project.

The snapshot (`data/export_golden.json`) was written by the row-by-row exporter that
came before the columnar write path; the columnar path must give the same rows, in
the same order, with the same features and Arrow schema. Ids that differ between
runs (response and project primary keys, pseudonyms) are replaced by stable names.
Regenerate only on purpose: `EXPORT_GOLDEN_WRITE=1 pytest tests/services/exporting/test_golden_rows.py`.
"""

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import datasets
import pytest

from labeling.models import Assignment, Judgment, Project, Response
from labeling.services.exporting import ExportOptions, annotator_pseudonym, preferences_export
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

GOLDEN = Path(__file__).parent / "data" / "export_golden.json"
START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
NAMES = ("ada", "bob", "cyd")

# (annotator index, ranking as response positions, strength, extras) per item, in submit order.
PAIRWISE = {
    "agree": [(0, [[0], [1]], 3, {}), (1, [[0], [1]], None, {}), (2, [[1], [0]], 2, {})],
    "unanimous": [(0, [[1], [0]], 1, {}), (1, [[1], [0]], 2, {}), (2, [[1], [0]], 3, {})],
    "tie": [(0, [[0, 1]], None, {}), (1, [[0, 1]], None, {}), (2, [[0], [1]], 1, {})],
    "split": [(0, [[0], [1]], 2, {}), (1, [[1], [0]], 2, {})],
    "weak": [(0, [[0], [1]], 1, {"both_bad": True}), (1, [[1], [0]], 1, {}), (2, [[0], [1]], 3, {})],
    "formula": [
        (0, [[1], [0]], 2, {"rationale": '=HYPERLINK("x")', "criteria": {"tone": 2, "a": "b"}, "seconds": 4.5}),
        (1, [[1], [0]], None, {"rationale": "plain ünïcode ✓", "late": True}),
    ],
    "gold": [(0, [[0], [1]], 1, {}), (1, [[0], [1]], 1, {})],
    "single": [(0, [[1], [0]], 3, {})],
    "single-tie": [(1, [[0, 1]], None, {})],
    "single-plain": [(2, [[0], [1]], None, {"criteria": {"z": [1, 2], "b": None}})],
}
RANKING = {
    "four": [
        (0, [[0], [1], [2], [3]], 3, {}),
        (1, [[1], [0], [3], [2]], 1, {}),
        (2, [[0], [2, 3], [1]], None, {}),
    ],
    "three": [(0, [[2], [1], [0]], 2, {}), (1, [[2], [0, 1]], 2, {})],
    "tied": [(0, [[0, 1, 2]], None, {}), (1, [[0], [1, 2]], 1, {})],
    "single": [(0, [[2], [0], [1]], 2, {})],
    "single-pair": [(1, [[1], [0]], None, {})],
}
PROMPTS = {
    "formula": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "=1+1?"},
        {"role": "assistant", "content": "+2"},
        {"role": "user", "content": "Sure? -@"},
    ],
}

CASES = {
    "default": ("pairwise", {}),
    "default-standard-margin": ("pairwise", {"style": "standard", "margin": True}),
    "default-unanimous": ("pairwise", {"aggregate": "unanimous", "margin": True}),
    "default-all-margin": ("pairwise", {"aggregate": "all", "margin": True}),
    "default-min-agreement": ("pairwise", {"min_agreement": 0.7}),
    "default-gold-test-split": ("pairwise", {"include_gold": True, "test_size": 0.4, "seed": 7}),
    "raw": ("pairwise", {"config": "raw"}),
    "raw-gold-test-split": ("pairwise", {"config": "raw", "include_gold": True, "test_size": 0.3, "seed": 3}),
    "unpaired": ("pairwise", {"config": "unpaired"}),
    "unpaired-standard-all": ("pairwise", {"config": "unpaired", "style": "standard", "aggregate": "all"}),
    "ranking-default": ("ranking", {}),
    "ranking-standard-all-margin": ("ranking", {"style": "standard", "aggregate": "all", "margin": True}),
    "ranking-unanimous": ("ranking", {"aggregate": "unanimous"}),
    "ranking-raw": ("ranking", {"config": "raw"}),
    "ranking-unpaired": ("ranking", {"config": "unpaired", "test_size": 0.5, "seed": 1}),
}


def build(slug: str, mode: str, plan: dict) -> tuple[Project, dict[str, str]]:
    """A project judged as `plan` says, with fixed judgment ids and timestamps; and the stable names."""
    project = ProjectFactory(slug=slug, overlap=3, mode=mode)
    users = [MembershipFactory(project=project, user__username=f"{slug}-{name}").user for name in NAMES]
    names = {
        annotator_pseudonym(project, user.pk): f"annotator:{name}" for user, name in zip(users, NAMES, strict=True)
    }
    serial = 0
    for external_id, votes in plan.items():
        size = max(2, len({position for _, ranking, _, _ in votes for group in ranking for position in group}))
        item = ItemFactory(
            project=project,
            external_id=external_id,
            prompt=PROMPTS.get(external_id, [{"role": "user", "content": f"Which is better for {external_id}?"}]),
            responses=[f"Answer {position} to {external_id}, ⟨{position}⟩" for position in range(size)],
            is_gold=external_id == "gold",
        )
        ids = list(Response.objects.filter(item=item).order_by("position").values_list("pk", flat=True))
        names.update({str(pk): f"{external_id}/{position}" for position, pk in enumerate(ids)})
        for annotator, ranking, strength, extras in votes:
            serial += 1
            at = START + dt.timedelta(minutes=serial)
            shown = list(reversed(ids)) if serial % 2 else ids
            assignment = Assignment.objects.create(
                project=project,
                item=item,
                annotator=users[annotator],
                state=Assignment.State.SUBMITTED,
                shown_order=shown,
                expires_at=at,
            )
            judgment = Judgment.objects.create(
                id=uuid.UUID(int=serial + (1000 if mode == "ranking" else 0)),
                assignment=assignment,
                project=project,
                item=item,
                annotator=users[annotator],
                ranking=[[ids[position] for position in group] for group in ranking],
                strength=strength,
                **extras,
            )
            Judgment.objects.filter(pk=judgment.pk).update(created_at=at, updated_at=at + dt.timedelta(seconds=9))
    return project, names


def stable(value, names: dict[str, str]):
    if isinstance(value, dict):
        return {key: stable(inner, names) for key, inner in value.items()}
    if isinstance(value, list):
        return [stable(inner, names) for inner in value]
    if isinstance(value, str) and value in names:
        return names[value]
    return value


def rounded(rows: list[dict]) -> list[dict]:
    return [{key: round(value, 9) if isinstance(value, float) else value for key, value in row.items()} for row in rows]


def snapshot(project: Project, names: dict[str, str], out: Path, options: dict) -> dict:
    report = preferences_export(project=project, out_dir=out, options=ExportOptions(**options))
    loaded = datasets.load_from_disk(str(out))
    return {
        "report": {"rows": report.rows, "items": report.items, "judgments": report.judgments},
        "counts": {key: value for key, value in vars(report.counts).items()},
        "splits": {
            split: {
                "features": part.features.to_dict(),
                "schema": str(part.data.schema.remove_metadata()),
                "rows": stable(part.to_list(), names),
            }
            for split, part in loaded.items()
        },
    }


def assert_golden(projects: dict[str, tuple[Project, dict[str, str]]], out: Path, cases=tuple(CASES)) -> None:
    """Each of `cases` exported from `projects` (by kind) gives the snapshot's rows and features."""
    expected = json.loads(GOLDEN.read_text())
    for case in cases:
        kind, options = CASES[case]
        project, names = projects[kind]
        got = snapshot(project, names, out / case, options)
        assert json.loads(json.dumps(got, sort_keys=True)) == expected[case], case


def watch(monkeypatch, module, name: str) -> list:
    """The objects `module.name` makes from now on (a reader class, say), in order."""
    made = []
    make = getattr(module, name)

    def watched(*args):
        made.append(make(*args))
        return made[-1]

    monkeypatch.setattr(module, name, watched)
    return made


@pytest.fixture
def projects(db):
    return {"pairwise": build("golden", "pairwise", PAIRWISE), "ranking": build("ranked", "ranking", RANKING)}


def test_every_config_exports_the_rows_and_features_of_the_snapshot(projects, tmp_path):
    got = {}
    for case, (kind, options) in CASES.items():
        project, names = projects[kind]
        got[case] = snapshot(project, names, tmp_path / case, options)
    if os.environ.get("EXPORT_GOLDEN_WRITE"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    for case in CASES:
        assert json.loads(json.dumps(got[case], sort_keys=True)) == expected[case], case


def test_jsonl_and_parquet_carry_the_same_rows(projects, tmp_path):
    project, names = projects["pairwise"]
    options = CASES["default-gold-test-split"][1]
    expected = json.loads(GOLDEN.read_text())["default-gold-test-split"]["splits"]
    preferences_export(project=project, out_dir=tmp_path / "jsonl", options=ExportOptions(fmt="jsonl", **options))
    preferences_export(project=project, out_dir=tmp_path / "hub", options=ExportOptions(fmt="parquet", **options))
    for split, part in expected.items():
        lines = (tmp_path / "jsonl" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        parquet = datasets.Dataset.from_parquet(str(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet"))
        # pandas' to_json writes floats with 10 significant digits
        assert rounded(stable([json.loads(line) for line in lines], names)) == rounded(part["rows"])
        assert stable(parquet.to_list(), names) == part["rows"]
