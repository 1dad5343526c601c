"""The README.md dataset card: what a reader of the Hub page learns about the export.

Exports are made through the real services and the card is read back as markdown
(markdown-it-py's tokens), so a test fails on what a reader would see.
"""

import datasets
import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from markdown_it import MarkdownIt

from labeling.models import Job, Project, Response
from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.exporting.card import demoted_headings
from labeling.services.jobs import job_import_start
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

GUIDELINES = """# How to judge

Read the whole conversation first.

## Helpfulness

Prefer the answer that *solves* the task.

```markdown
## not a heading: inside a code block
# nor this
```

    # nor this: an indented code block

Edge cases
----------

> ### Quoted heading

##### Fine print
###### Finest print
"""


def judge_all(project, annotator):
    """`annotator` judges every item left, preferring the first response (position 0, `model-a`)."""
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        first = assignment.item.responses.get(position=0).pk
        choice = "A" if assignment.shown_order[0] == first else "B"
        ranking = ranking_from_choice(assignment=assignment, choice=choice)
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)


def card_of(project, tmp_path, name="out", **options) -> tuple[dict, str]:
    out = tmp_path / name
    preferences_export(project=project, out_dir=out, options=ExportOptions(**options))
    text = (out / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every heading a markdown renderer sees, code blocks excluded."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [
        (int(token.tag[1]), tokens[index + 1].content)
        for index, token in enumerate(tokens)
        if token.type == "heading_open"
    ]


def section(body: str, title: str) -> str:
    """The text under the `## title` heading, up to the next `## ` heading."""
    start = body.index(f"\n## {title}\n") + len(title) + 5
    end = body.find("\n## ", start)
    return body[start:] if end == -1 else body[start:end]


@pytest.fixture
def judged(project, annotator, items):
    judge_all(project, annotator)
    return project


# -- columns -------------------------------------------------------------------------


def test_columns_are_listed_with_their_meaning_and_type_in_words(judged, tmp_path):
    _, body = card_of(judged, tmp_path, fmt="parquet", margin=True)
    columns = section(body, "Columns")
    assert "- `prompt` (list of {role, content} messages) — the conversation so far" in columns
    assert "- `chosen` (list of {role, content} messages) — the preferred response: one assistant message" in columns
    assert "- `chosen_model` (string, null when unknown) — the model that wrote `chosen`" in columns
    assert "- `votes` (integer) — " in columns
    assert "- `agreement` (float) — " in columns
    assert "- `margin` (float) — how much better" in columns
    for repr_text in ("Value(", "List(", "dtype", "_type", "{'"):
        assert repr_text not in columns


def test_standard_style_columns_say_they_are_text(judged, tmp_path):
    _, body = card_of(judged, tmp_path, style="standard")
    columns = section(body, "Columns")
    assert "- `prompt` (string) — the conversation so far as text" in columns
    assert "- `chosen` (string) — the preferred response as text, starting with a space" in columns


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"style": "standard", "margin": True},
        {"config": "raw"},
        {"config": "unpaired"},
        {"config": "unpaired", "style": "standard"},
    ],
)
def test_every_exported_column_has_a_line_with_a_meaning(judged, tmp_path, options):
    out = tmp_path / "out"
    preferences_export(project=judged, out_dir=out, options=ExportOptions(**options))
    names = datasets.load_from_disk(str(out))["train"].column_names
    columns = section((out / "README.md").read_text(), "Columns")
    lines = [line for line in columns.splitlines() if line.startswith("- `")]
    assert [line.split("`")[1] for line in lines] == names
    for line in lines:
        kind, meaning = line.split(") — ", 1)
        assert "(" in kind and len(meaning) > 10, line


def test_a_ranking_project_documents_rank_gap(db, tmp_path):
    project = ProjectFactory(slug="ranked", mode="ranking")
    annotator = MembershipFactory(project=project).user
    ItemFactory(project=project, responses=["one", "two", "three"])
    assignment = assignment_next(project=project, annotator=annotator)
    judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[pk] for pk in assignment.shown_order])
    _, body = card_of(project, tmp_path)
    assert "- `rank_gap` (integer) — ranking projects only: how many places apart" in section(body, "Columns")


# -- guidelines ------------------------------------------------------------------------


def test_guidelines_sit_below_their_own_heading_in_the_outline(judged, tmp_path):
    judged.guidelines = GUIDELINES
    judged.save()
    _, body = card_of(judged, tmp_path)
    outline = headings(body)
    levels = dict((text, level) for level, text in outline)
    assert outline[0] == (1, judged.title)
    assert [text for level, text in outline if level <= 2][1:] == [
        "Contents",
        "Source data",
        "Models",
        "Columns",
        "Loading",
        "License",
        "Guidelines given to annotators",
    ]
    assert levels["How to judge"] == 3 and levels["Helpfulness"] == 4 and levels["Edge cases"] == 4
    assert levels["Quoted heading"] == 5
    assert levels["Fine print"] == 6 and levels["Finest print"] == 6
    # code blocks are copied as they are
    assert "```markdown\n## not a heading: inside a code block\n# nor this\n```" in body
    assert "\n    # nor this: an indented code block\n" in body


def test_demoting_keeps_everything_but_the_heading_markers():
    assert demoted_headings("# A\ntext\n## B #\n") == "### A\ntext\n#### B #\n"
    assert demoted_headings("Title\n=====\n\nbody") == "### Title\n\nbody"
    assert demoted_headings("   ## indented") == "   #### indented"
    assert demoted_headings("- item\n\n  # in a list") == "- item\n\n  ### in a list"
    assert demoted_headings("~~~\n# code\n~~~\n#not a heading") == "~~~\n# code\n~~~\n#not a heading"
    assert demoted_headings("") == ""


def test_an_unclosed_code_block_in_the_guidelines_cannot_swallow_the_rest_of_the_card(judged, tmp_path):
    judged.guidelines = "Example:\n\n```\n## never closed"
    judged.save()
    _, body = card_of(judged, tmp_path)
    assert body.rstrip().endswith("```")
    assert [text for level, text in headings(body) if level == 2][-1] == "Guidelines given to annotators"


# -- license ---------------------------------------------------------------------------


def test_a_project_without_a_license_is_stated_as_not_set(judged, tmp_path):
    judged.license = ""
    judged.save()
    header, body = card_of(judged, tmp_path, fmt="parquet")
    assert "license" not in header  # the Hub would show a license nobody chose
    assert section(body, "License").strip().startswith("Not set:")


def test_the_header_names_the_dataset_and_its_size_for_the_hub(judged, tmp_path):
    header, _ = card_of(judged, tmp_path, fmt="parquet")
    assert header["pretty_name"] == judged.title
    assert header["size_categories"] == ["n<1K"]


def test_a_chosen_license_is_in_the_header_and_the_body(judged, tmp_path):
    judged.license = "mit"
    judged.save()
    header, body = card_of(judged, tmp_path, fmt="parquet")
    assert header["license"] == "mit"
    assert (
        section(body, "License").strip()
        == "This data is released under `mit`, the license set in the project's settings."
    )


def test_a_new_project_has_no_license_until_one_is_chosen(db):
    assert Project.objects.create(slug="fresh", title="Fresh").license == ""


# -- source data ------------------------------------------------------------------------


def test_the_card_names_the_files_the_items_came_from_and_their_shape(
    project, manager, annotator, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    hh = b'{"chosen": "\\n\\nHuman: Hi?\\n\\nAssistant: Hi!", "rejected": "\\n\\nHuman: Hi?\\n\\nAssistant: Go."}\n'
    native = b'{"prompt": "2+2?", "responses": ["4", "5"]}\n'
    for name, data in (("hh-rlhf-sample.jsonl", hh), ("mine.jsonl", native), ("broken.jsonl", b"{not json\n")):
        with django_capture_on_commit_callbacks(execute=True):
            job_import_start(project=project, user=manager, upload=SimpleUploadedFile(name, data))
    assert Job.objects.filter(kind=Job.Kind.IMPORT, state=Job.State.FAILED).count() == 1
    judge_all(project, annotator)
    _, body = card_of(project, tmp_path)
    source = section(body, "Source data")
    assert "- `hh-rlhf-sample.jsonl`: HH-RLHF shape, 1 item, imported " in source
    assert "- `mine.jsonl`: native shape, 1 item, imported " in source
    assert "broken.jsonl" not in source  # a failed import added nothing


def test_items_not_imported_through_a_job_are_counted_as_such(judged, tmp_path):
    _, body = card_of(judged, tmp_path)
    assert "5 items came from imports the tool did not record" in section(body, "Source data")


# -- models ------------------------------------------------------------------------------


def test_unknown_models_are_null_in_the_card_and_in_the_rows(db, tmp_path):
    project = ProjectFactory(slug="anon", overlap=2)
    first, second = (MembershipFactory(project=project).user for _ in range(2))
    once = ItemFactory(project=project, external_id="once", target=1)  # the columnar path
    twice = ItemFactory(project=project, external_id="twice")  # the general path
    Response.objects.filter(item__in=[once, twice], position=1).update(model="")
    judge_all(project, first)
    judge_all(project, second)
    _, body = card_of(project, tmp_path)
    models = section(body, "Models")
    assert "| `model-a` |" in models and "| null (unknown) |" in models
    assert '""' not in models
    rows = datasets.load_from_disk(str(tmp_path / "out"))["train"].to_list()
    assert {row["item_id"] for row in rows} == {"once", "twice"}
    for row in rows:
        assert {row["chosen_model"], row["rejected_model"]} == {"model-a", None}

    preferences_export(project=project, out_dir=tmp_path / "unpaired", options=ExportOptions(config="unpaired"))
    unpaired = datasets.load_from_disk(str(tmp_path / "unpaired"))["train"]
    assert sorted(unpaired["model"], key=lambda model: model or "") == [None, None, "model-a", "model-a"]
    preferences_export(project=project, out_dir=tmp_path / "raw", options=ExportOptions(config="raw"))
    raw = datasets.load_from_disk(str(tmp_path / "raw"))["train"]
    assert all(
        {model for group in ranking for model in group} == {"model-a", None} for ranking in raw["ranking_models"]
    )


def test_the_models_section_counts_chosen_and_rejected(judged, tmp_path):
    _, body = card_of(judged, tmp_path)
    models = section(body, "Models")
    assert "| model | chosen | rejected |" in models
    assert "| `model-a` | 5 | 0 |" in models and "| `model-b` | 0 | 5 |" in models


# -- loading ---------------------------------------------------------------------------


def test_the_hub_layout_card_loads_with_load_dataset_only(judged, tmp_path):
    _, body = card_of(judged, tmp_path, name="hub", fmt="parquet")
    loading = section(body, "Loading")
    assert "load_from_disk" not in body
    assert 'load_dataset("path/to/this/folder")' in loading
    assert 'load_dataset("parquet", data_dir="path/to/this/folder/data")' in loading
    # what it says works
    assert datasets.load_dataset(str(tmp_path / "hub"), cache_dir=str(tmp_path / "cache"))["train"].num_rows == 5


def test_a_non_default_config_in_the_hub_layout_names_its_own_folder(judged, tmp_path):
    _, body = card_of(judged, tmp_path, name="hub", fmt="parquet", config="raw")
    assert 'data_dir="path/to/this/folder/raw"' in section(body, "Loading")
    assert datasets.load_dataset(str(tmp_path / "hub"), cache_dir=str(tmp_path / "cache"))["train"].num_rows == 5


def test_the_save_to_disk_card_loads_with_load_from_disk_only(judged, tmp_path):
    _, body = card_of(judged, tmp_path)
    loading = section(body, "Loading")
    assert 'load_from_disk("path/to/this/folder")' in loading
    assert "load_dataset" not in loading


def test_the_json_lines_card_loads_each_split_file(judged, tmp_path):
    _, body = card_of(judged, tmp_path, fmt="jsonl", test_size=0.4, seed=1)
    loading = section(body, "Loading")
    assert "load_from_disk" not in loading
    assert (
        'load_dataset("json", data_files={"train": "path/to/this/folder/train.jsonl", '
        '"test": "path/to/this/folder/test.jsonl"})' in loading
    )
