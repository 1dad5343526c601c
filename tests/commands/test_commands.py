"""Management commands as an operator runs them: output, exit errors, and what they change."""

import json
from io import StringIO

import datasets
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from labeling.models import Item, Membership, Project
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.tokens import token_authenticate
from tests.factories import ItemFactory

User = get_user_model()


def run(*args) -> tuple[str, str]:
    """Run a command; returns (stdout, stderr). A failing command raises CommandError."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def good_rows(count: int) -> list[dict]:
    return [{"id": f"row-{n}", "prompt": f"Q{n}?", "responses": [f"Yes {n}.", f"No {n}."]} for n in range(count)]


# -- createproject ---------------------------------------------------------------


def test_createproject_creates_the_project_with_its_guidelines(db, tmp_path):
    guidelines = tmp_path / "guidelines.md"
    guidelines.write_text("Prefer **honest** answers.", encoding="utf-8")

    out, _ = run("createproject", "delta", "--title", "Delta run", "--overlap", "3", "--guidelines", str(guidelines))

    assert out.strip() == "Created project 'delta' (pairwise, overlap 3)."
    project = Project.objects.get(slug="delta")
    assert (project.title, project.overlap, project.guidelines) == ("Delta run", 3, "Prefer **honest** answers.")


def test_createproject_refuses_a_slug_that_is_taken(project):
    with pytest.raises(CommandError, match="A project with slug 'alpha' already exists"):
        run("createproject", "alpha")
    assert Project.objects.filter(slug="alpha").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Not A Slug"], "'Not A Slug' is not a valid slug"),
        (["delta", "--overlap", "0"], "Overlap must be at least 1"),
        (["delta", "--lease-seconds", "5"], "Lease time must be at least 10 seconds"),
        (["delta", "--guidelines", "/nonexistent/guidelines.md"], "Cannot read guidelines file"),
    ],
)
def test_createproject_explains_what_is_wrong_and_creates_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("createproject", *args)
    assert not Project.objects.exists()


# -- addmember -------------------------------------------------------------------


def test_addmember_adds_an_existing_user_as_annotator(project, user_factory):
    user_factory(username="carla")

    out, _ = run("addmember", "alpha", "carla")

    assert out.strip() == "carla is now annotator of 'alpha'."
    assert Membership.objects.get(project=project, user__username="carla").role == "annotator"


def test_addmember_create_makes_a_manager_who_can_log_in(project):
    out, _ = run("addmember", "alpha", "dora", "--create", "--role", "manager", "--password", "s3cret-enough")

    assert out.strip() == "dora is now manager of 'alpha'."
    user = User.objects.get(username="dora")
    assert user.check_password("s3cret-enough")
    assert Membership.objects.get(project=project, user=user).role == "manager"


def test_addmember_create_without_password_makes_an_account_that_cannot_log_in(project):
    run("addmember", "alpha", "eve", "--create")

    assert not User.objects.get(username="eve").has_usable_password()


def test_addmember_again_changes_the_role_without_a_second_membership(project, annotator):
    run("addmember", "alpha", annotator.username, "--role", "manager")

    assert Membership.objects.filter(project=project, user=annotator).get().role == "manager"


def test_addmember_unknown_user_without_create_is_an_error(project):
    with pytest.raises(CommandError, match=r"User 'ghost' does not exist: .*command line: --create"):
        run("addmember", "alpha", "ghost")
    assert not User.objects.filter(username="ghost").exists()


def test_addmember_to_a_missing_project_names_it(db, user_factory):
    user_factory(username="carla")

    with pytest.raises(CommandError, match="Project 'nowhere' does not exist"):
        run("addmember", "nowhere", "carla")


def test_addmember_refuses_an_unknown_role(project, annotator):
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        run("addmember", "alpha", annotator.username, "--role", "owner")


# -- apitoken --------------------------------------------------------------------


def test_apitoken_prints_a_token_alone_on_its_line_that_authenticates(annotator):
    out, _ = run("apitoken", annotator.username, "--name", "laptop")

    lines = out.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert token == token.strip() and " " not in token
    assert token_authenticate(token=token) == annotator


def test_apitoken_prints_a_new_token_each_time(annotator):
    first, _ = run("apitoken", annotator.username)
    second, _ = run("apitoken", annotator.username)

    assert first != second
    assert token_authenticate(token=first.strip()) == token_authenticate(token=second.strip()) == annotator


def test_apitoken_for_an_unknown_user_is_an_error(db):
    with pytest.raises(CommandError, match="User 'ghost' does not exist"):
        run("apitoken", "ghost")


# -- import_items ----------------------------------------------------------------


def test_import_items_reports_what_it_imported(project, write_jsonl):
    path = write_jsonl(good_rows(3))

    out, _ = run("import_items", "alpha", str(path))

    assert out.strip() == (
        "imported 3 items (native shape) from 3 rows; rejected 0; "
        "skipped 0 already in the project and 0 repeated in the file."
    )
    assert Item.objects.filter(project=project).count() == 3


def test_import_items_again_counts_what_is_already_there(project, write_jsonl):
    path = write_jsonl(good_rows(3))
    run("import_items", "alpha", str(path))

    out, _ = run("import_items", "alpha", str(path))

    assert "imported 0 items" in out and "skipped 3 already in the project" in out
    assert Item.objects.count() == 3


def test_import_items_malformed_line_is_an_error_naming_the_row_and_imports_nothing(project, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join([json.dumps(good_rows(1)[0]), "{broken", json.dumps(good_rows(3)[2])]) + "\n")
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("import_items", "alpha", str(path), stdout=out, stderr=err)

    assert "1 of 3 rows are invalid; nothing was imported" in str(caught.value)
    assert "row 2: is not valid JSON" in str(caught.value)
    assert "rows read: 3" in err.getvalue()
    assert Item.objects.count() == 0


def test_import_items_dry_run_says_would_import_and_writes_nothing(project, write_jsonl):
    out, _ = run("import_items", "alpha", str(write_jsonl(good_rows(2))), "--dry-run")

    assert out.startswith("would import 2 items (native shape) from 2 rows")
    assert Item.objects.count() == 0


def test_import_items_skip_invalid_imports_the_rest_and_lists_rejected_rows(project, write_jsonl):
    rows = [*good_rows(2), {"prompt": "Q?", "responses": ["only one"]}]

    out, err = run("import_items", "alpha", str(write_jsonl(rows)), "--skip-invalid")

    assert "rejected row 3: an item needs 2 to 8 responses (got 1)" in err
    assert out.startswith("imported 2 items (native shape) from 3 rows; rejected 1;")
    assert Item.objects.count() == 2


def test_import_items_into_a_missing_project_names_it(db, write_jsonl):
    with pytest.raises(
        CommandError, match=r"Project 'nowhere' does not exist\. Create it with `manage\.py createproject"
    ):
        run("import_items", "nowhere", str(write_jsonl(good_rows(1))))
    assert Item.objects.count() == 0


def test_import_items_missing_file_is_an_error(project, tmp_path):
    with pytest.raises(CommandError, match=r"missing\.jsonl' does not exist"):
        run("import_items", "alpha", str(tmp_path / "missing.jsonl"))


def test_import_items_with_an_explicit_format(project, tmp_path):
    path = tmp_path / "rows.data"
    path.write_text(json.dumps(good_rows(2)))

    out, _ = run("import_items", "alpha", str(path), "--format", "json")

    assert out.startswith("imported 2 items")


# -- export_preferences ----------------------------------------------------------


@pytest.fixture
def judged(project, annotator, second_annotator):
    """Two items, each judged by both annotators of the overlap-2 project, who agree."""
    for item in ItemFactory.create_batch(2, project=project):
        for user in (annotator, second_annotator):
            assignment = assignment_next(project=project, annotator=user)
            assert assignment.item_id == item.pk
            first_response = item.responses.get(position=0).pk
            choice = "A" if assignment.shown_order[0] == first_response else "B"
            ranking = ranking_from_choice(assignment=assignment, choice=choice)
            judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking)
    return project


def test_export_preferences_writes_a_folder_load_from_disk_reads(judged, tmp_path):
    out_dir = tmp_path / "export"

    out, _ = run("export_preferences", "alpha", "--out", str(out_dir))

    assert out.strip() == (
        f"Exported to {out_dir}: train 2 rows from 2 items and 4 judgments "
        "(left out: 0 tied pairs, 0 split votes, 0 below --min-agreement)."
    )
    train = datasets.load_from_disk(str(out_dir))["train"]
    assert train.num_rows == 2
    assert all(row["votes"] == 2 and row["agreement"] == 1.0 for row in train)
    assert (out_dir / "README.md").is_file()


def test_export_preferences_passes_its_options_on(judged, tmp_path):
    out_dir = tmp_path / "export"

    options = ["--style", "standard", "--margin", "--format", "parquet", "--test-size", "0.5", "--seed", "4"]
    run("export_preferences", "alpha", "--out", str(out_dir), *options)

    loaded = datasets.load_dataset("parquet", data_dir=str(out_dir / "data"), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"][0]["prompt"].startswith("\n\nHuman: ")
    assert "margin" in loaded["train"].column_names


def test_export_preferences_into_a_non_empty_folder_is_an_error(judged, tmp_path):
    out_dir = tmp_path / "export"
    out_dir.mkdir()
    (out_dir / "old.txt").write_text("old")

    with pytest.raises(CommandError, match="already exists and is not empty"):
        run("export_preferences", "alpha", "--out", str(out_dir))
    assert [path.name for path in out_dir.iterdir()] == ["old.txt"]


def test_export_preferences_for_a_missing_project_names_it(db, tmp_path):
    with pytest.raises(CommandError, match="Project 'nowhere' does not exist"):
        run("export_preferences", "nowhere", "--out", str(tmp_path / "export"))
    assert not (tmp_path / "export").exists()


def test_export_preferences_refuses_a_test_size_of_one(judged, tmp_path):
    with pytest.raises(CommandError, match="--test-size must be at least 0 and below 1"):
        run("export_preferences", "alpha", "--out", str(tmp_path / "export"), "--test-size", "1")


# -- project_stats ---------------------------------------------------------------


def test_project_stats_json_parses_with_every_section(judged):
    out, _ = run("project_stats", "alpha", "--json")

    stats = json.loads(out)
    assert {"items", "items_complete", "judgments", "agreement", "annotators", "leaderboard"} <= set(stats)
    assert (stats["items"], stats["items_complete"], stats["judgments"]) == (2, 2, 4)
    assert stats["agreement"]["pairwise"] == 1.0
    assert sorted(row["username"] for row in stats["annotators"]) == ["anna", "bert"]
    assert {row["model"] for row in stats["leaderboard"]} == {"model-a", "model-b"}


def test_project_stats_text_summarises_progress(judged):
    out, _ = run("project_stats", "alpha")

    assert out.splitlines()[0] == "items: 2 (2 complete), judgments: 4"
    assert "anna: 2 judgments" in out and "bert: 2 judgments" in out


def test_project_stats_of_an_empty_project(project):
    stats = json.loads(run("project_stats", "alpha", "--json")[0])

    assert (stats["items"], stats["judgments"], stats["annotators"], stats["leaderboard"]) == (0, 0, [], [])
    assert stats["agreement"]["pairwise"] is None


def test_project_stats_for_a_missing_project_names_it(db):
    with pytest.raises(CommandError, match="Project 'nowhere' does not exist"):
        run("project_stats", "nowhere", "--json")


# -- demo ------------------------------------------------------------------------


def test_demo_loads_the_project_and_prints_the_three_accounts(db):
    out, _ = run("demo")

    assert "Created project 'demo'." in out
    assert "Demo items: 32 new, 0 already there." in out
    for username, password in (
        ("manager", "demo-manager-pass"),
        ("alice", "demo-alice-pass"),
        ("bob", "demo-bob-pass"),
    ):
        assert username in out and password in out
        assert User.objects.get(username=username).check_password(password)
    project = Project.objects.get(slug="demo")
    assert project.overlap == 2
    assert Item.objects.filter(project=project).count() == 32
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"manager": "manager", "alice": "annotator", "bob": "annotator"}
    assert "log in at http://127.0.0.1:8000/" in out


def test_demo_manager_may_create_projects_and_annotators_may_not(db, client):
    run("demo")

    assert User.objects.get(username="manager").has_perm("labeling.add_project")
    assert not User.objects.get(username="alice").has_perm("labeling.add_project")
    client.force_login(User.objects.get(username="manager"))
    assert client.get(reverse("labeling:manage_project_new")).status_code == 200


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("8081", "http://127.0.0.1:8081/"),
        ("[::1]:8000", "http://[::1]:8000/"),
    ],
)
def test_demo_prints_the_address_it_is_served_on(db, address, url):
    out, _ = run("demo", "--address", address)

    assert f"log in at {url}" in out


def test_demo_runs_twice_and_imports_nothing_new(db):
    run("demo")
    alice = User.objects.get(username="alice")
    alice.set_password("alice-changed-it")
    alice.save()

    out, _ = run("demo")

    assert "Created project" not in out
    assert "Demo items: 0 new, 32 already there." in out
    assert "manager" in out and "alice" in out and "bob" in out
    assert Item.objects.filter(project__slug="demo").count() == 32
    assert Project.objects.filter(slug="demo").count() == 1
    assert User.objects.get(username="alice").check_password("alice-changed-it")  # a changed password is kept


def test_createproject_takes_criteria_skip_reasons_and_adaptive_votes(db, tmp_path):
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps([{"key": "helpfulness", "type": "likert"}, {"key": "notes", "type": "text"}]))
    out = StringIO()
    call_command(
        "createproject",
        "rich",
        "--criteria",
        str(criteria),
        "--skip-reason",
        "Not my language",
        "--skip-reason",
        "Broken item",
        "--rationale-required",
        "--min-votes",
        "2",
        "--max-votes",
        "5",
        stdout=out,
    )
    project = Project.objects.get(slug="rich")
    assert [criterion["key"] for criterion in project.criteria] == ["helpfulness", "notes"]
    assert project.criteria[0]["per_response"] and not project.criteria[1]["per_response"]
    assert project.skip_reasons == ["Not my language", "Broken item"]
    assert project.rationale_required and project.adaptive
    assert "2..5 votes" in out.getvalue()


def test_createproject_refuses_bad_criteria(db, tmp_path):
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps([{"key": "Bad Key", "type": "likert"}]))
    with pytest.raises(CommandError, match=r"criteria\[0\]\.key"):
        call_command("createproject", "bad-criteria", "--criteria", str(criteria))
    assert not Project.objects.filter(slug="bad-criteria").exists()
