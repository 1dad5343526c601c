"""The manager's console as a manager uses it: create a project, import (fixing a bad row first),
add an annotator, export, and download a file that `datasets` loads."""

import json
import re
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from labeling.models import Item, Job, Membership, Project, Response
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.browser.helpers import log_in, save_screenshot
from tests.factories import UserFactory

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def rows(bad: bool) -> list[dict]:
    good = [
        {"id": f"q{n}", "prompt": f"What is {n} + {n}?", "response_a": str(2 * n), "response_b": "**no idea**",
         "model_a": "calc", "model_b": "guess"}
        for n in range(1, 5)
    ]  # fmt: skip
    if bad:
        good[2] = {"id": "q3", "prompt": "What is 3 + 3?", "response_a": "6"}  # response_b is missing
    return good


def write(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in data))
    return path


def judge_everything(project: Project, username: str) -> int:
    """The new annotator judges every item (through the services; the annotate page has its own tests)."""
    annotator = Membership.objects.get(project=project, user__username=username).user
    judged = 0
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        left = Response.objects.get(pk=assignment.shown_order[0])
        choice = "A" if left.model == "calc" else "B"
        ranking = ranking_from_choice(assignment=assignment, choice=choice)
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
        judged += 1
    return judged


def test_manager_creates_imports_adds_an_annotator_and_exports(page, live_server, settings, tmp_path):
    import datasets

    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    boss = UserFactory(username="boss")
    boss.user_permissions.add(Permission.objects.get(codename="add_project"))
    log_in(page, "boss")

    # A new project, with guidelines previewed before saving.
    page.goto("/projects/new/")
    page.get_by_label("Slug").fill("arith")
    page.get_by_label("Title").fill("Arithmetic")
    page.get_by_label("Guidelines (markdown)").fill("Prefer the **correct** answer.")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("guidelines-preview").locator("strong")).to_have_text("correct")
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(re.compile(r"/p/arith/import/$"))
    expect(page.locator(".messages")).to_contain_text("Project “Arithmetic” created")

    # A file with no valid row (columns of no known shape) is refused with its reasons: no import offered.
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("question,answer\nWhat?,This.\nWhy?,Because.\n")
    page.get_by_label("File").set_input_files(str(wrong))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_test_id("preview-error")).to_contain_text("None of the 2 rows is valid; nothing was imported")
    expect(page.get_by_test_id("row-errors").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("start-import")).to_have_count(0)
    assert not Item.objects.filter(project__slug="arith").exists()

    # A file with one bad row: its error is shown and nothing is written.
    page.get_by_label("File").set_input_files(str(write(tmp_path / "items.jsonl", rows(bad=True))))
    page.get_by_role("button", name="Check the file").click()
    errors = page.get_by_test_id("row-errors")
    expect(errors.locator("tbody tr")).to_have_count(1)
    expect(errors.locator("tbody td").first).to_have_text("3")  # the third row, by its number in the file
    expect(errors.locator("tbody td").nth(1)).to_contain_text("response_b")
    expect(page.get_by_test_id("shape")).to_have_text("flat_pair")
    expect(page.get_by_test_id("sample").first.locator(".markdown.rendered strong").first).to_have_text("no idea")
    assert not Item.objects.filter(project__slug="arith").exists()

    # Fixed, checked again, imported as a job whose progress is shown in place.
    page.get_by_label("File").set_input_files(str(write(tmp_path / "items.jsonl", rows(bad=False))))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_test_id("invalid-rows")).to_have_text("0")
    expect(page.get_by_test_id("new-items")).to_have_text("4")
    save_screenshot(page, "manager-import-preview")
    page.get_by_role("button", name="Import 4 items").click()
    expect(page.get_by_test_id("job-state")).to_have_text("Succeeded")
    expect(page.get_by_test_id("job-result")).to_contain_text("Imported 4 items")
    expect(page).to_have_url(re.compile(r"/p/arith/import/$"))  # swapped in place, no navigation
    assert Item.objects.filter(project__slug="arith").count() == 4
    # The list of recent imports shows it as soon as it ends, without a reload.
    expect(page.get_by_test_id("imports")).to_contain_text("4 imported of 4 rows")

    # A new annotator, created with a password.
    page.get_by_role("link", name="Members").click()
    form = page.get_by_test_id("add-member")
    form.get_by_label("Username").fill("anna")
    form.get_by_label("Create a new user").check()
    form.get_by_label("Password").fill("a long enough passphrase")
    form.get_by_role("button", name="Add member").click()
    expect(page.locator(".messages")).to_contain_text("anna is now an annotator of this project.")
    expect(page.get_by_test_id("member-anna")).to_be_visible()
    project = Project.objects.get(slug="arith")
    assert judge_everything(project, "anna") == 4

    # Export, watch the job, download, and load it with datasets.
    page.get_by_role("link", name="Export").click()
    # A refused setting shows its message in the form, which stays usable; no job starts.
    page.get_by_label("Min agreement").fill("2")
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("between 0 and 1")
    expect(page.get_by_test_id("export-form")).to_have_count(1)
    assert not Job.objects.filter(kind=Job.Kind.EXPORT).exists()
    page.get_by_label("Min agreement").fill("")
    page.get_by_label("Aggregation").select_option("all")
    page.get_by_label("Margin").check()
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_test_id("job-state")).to_have_text("Succeeded")
    job = Job.objects.get(project=project, kind=Job.Kind.EXPORT)
    expect(page.get_by_test_id("checksum")).to_have_text(job.checksum)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "manage-export.png"), full_page=True)
    with page.expect_download() as download_info:
        page.get_by_test_id("download").click()
    archive = tmp_path / "export.zip"
    download_info.value.save_as(archive)
    folder = tmp_path / "export"
    zipfile.ZipFile(archive).extractall(folder)
    dataset = datasets.load_dataset("parquet", data_dir=str(folder / "data"))
    train = dataset["train"]
    assert train.num_rows == 4
    assert {"prompt", "chosen", "rejected", "margin"} <= set(train.column_names)
    assert all(row["chosen"][0]["content"] != "**no idea**" for row in train)
    assert "Prefer the **correct** answer." in (folder / "README.md").read_text()

    # The past exports list shows it with its settings and checksum, without a reload.
    expect(page.get_by_test_id("exports")).to_contain_text(job.checksum)
    expect(page.get_by_test_id("exports")).to_contain_text("default, conversational, all, margin")
