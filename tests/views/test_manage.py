"""The manager's console in the browser's terms: every page by every persona, CSRF, and what each page does."""

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import ApiToken, Assignment, Item, Job, Judgment, Membership, Project
from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import job_export_start, run_job
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.tokens import token_create
from tests.factories import PASSWORD, ItemFactory, MembershipFactory
from tests.views.test_manage_criteria import criteria_fields

HTMX = {"HX-Request": "true"}
GOOD_ROWS = [
    {"id": f"q{n}", "prompt": f"Question {n}?", "response_a": f"a{n}", "response_b": f"b{n}"} for n in range(3)
]


def _jsonl(rows, name="items.jsonl"):
    upload = io.BytesIO("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode())
    upload.name = name
    return upload


def _judge(project, annotator):
    assignment = assignment_next(project=project, annotator=annotator)
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    return judgment


@pytest.fixture
def world(project, manager, annotator, outsider, items, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.LABELING_JOBS_DIR = tmp_path
    judgment = _judge(project, annotator)
    made = []

    def job():  # an export costs a second or so: made only for the tests that need one
        if not made:
            with django_capture_on_commit_callbacks(execute=True):
                made.append(job_export_start(project=project, user=manager, options=ExportOptions()))
        return made[0]

    return {
        "project": project,
        "judgment": judgment,
        "job": job,
        "users": {"manager": manager, "annotator": annotator, "outsider": outsider, "anonymous": None},
    }


def _route(world, name: str) -> tuple[str, str, dict, int]:
    """(method, url, body, the manager's status) of one console route of the project."""
    routes = _routes(world, with_job=name in {"job", "download"})
    return next(route[1:] for route in routes if route[0] == name)


def _routes(world, *, with_job: bool) -> list[tuple[str, str, str, dict, int]]:
    """(name, method, url, body, the manager's status) for every console route of a project."""
    project, judgment = world["project"], world["judgment"]
    job = world["job"]() if with_job else None
    slug = project.slug
    annotator_membership = Membership.objects.get(project=project, user=world["users"]["annotator"])
    item = judgment.item
    return [
        ("settings", "GET", reverse("labeling:manage_settings", args=[slug]), {}, 200),
        ("archive", "POST", reverse("labeling:manage_archive", args=[slug]), {}, 302),
        ("reopen", "POST", reverse("labeling:manage_reopen", args=[slug]), {}, 302),
        ("members", "GET", reverse("labeling:manage_members", args=[slug]), {}, 200),
        (
            "member add",
            "POST",
            reverse("labeling:manage_members", args=[slug]),
            {"username": "otto", "role": "annotator"},
            302,
        ),
        (
            "member role",
            "POST",
            reverse("labeling:manage_member_role", args=[slug]),
            {"member": annotator_membership.pk, "role": "manager"},
            302,
        ),
        (
            "member remove",
            "POST",
            reverse("labeling:manage_member_remove", args=[slug]),
            {"member": annotator_membership.pk},
            302,
        ),
        ("import", "GET", reverse("labeling:manage_import", args=[slug]), {}, 200),
        ("import preview", "POST", reverse("labeling:manage_import", args=[slug]), {"file": "upload"}, 200),
        ("import start", "POST", reverse("labeling:manage_import_start", args=[slug]), {"upload": "gone"}, 302),
        ("import discard", "POST", reverse("labeling:manage_import_discard", args=[slug]), {"upload": "gone"}, 302),
        ("export", "GET", reverse("labeling:manage_export", args=[slug]), {}, 200),
        ("export start", "POST", reverse("labeling:manage_export", args=[slug]), {**_export_form()}, 302),
        *(
            [
                ("job", "GET", reverse("labeling:manage_job", args=[slug, job.pk]), {}, 200),
                ("download", "GET", reverse("labeling:manage_job_download", args=[slug, job.pk]), {}, 200),
            ]
            if job
            else []
        ),
        ("items", "GET", reverse("labeling:manage_items", args=[slug]), {}, 200),
        ("gold", "POST", reverse("labeling:manage_item_gold", args=[slug]), {"item": item.pk, "answer": "A"}, 302),
        (
            "priority",
            "POST",
            reverse("labeling:manage_item_priority", args=[slug]),
            {"item": item.pk, "priority": 3},
            302,
        ),
        ("withdraw", "POST", reverse("labeling:manage_item_withdraw", args=[slug]), {"item": item.pk}, 302),
        ("restore", "POST", reverse("labeling:manage_item_restore", args=[slug]), {"item": item.pk}, 302),
    ]


ROUTE_NAMES = [
    "settings", "archive", "reopen", "members", "member add", "member role", "member remove", "import",
    "import preview", "import start", "import discard", "export", "export start", "job", "download", "items",
    "gold", "priority", "withdraw", "restore",
]  # fmt: skip


POST_ROUTES_EXCLUDED = {"settings", "members", "import", "export", "job", "download", "items"}  # the GETs


def _export_form(**changes) -> dict:
    return {
        "config": "default",
        "style": "conversational",
        "aggregate": "majority",
        "test_size": "0",
        "seed": "0",
        **changes,
    }


def _send(client, method, url, body, **extra):
    if method == "GET":
        return client.get(url, **extra)
    if body.get("file") == "upload":
        body = {**body, "file": _jsonl(GOOD_ROWS)}
    return client.post(url, body, **extra)


@pytest.mark.parametrize("persona", ["manager", "annotator", "outsider", "anonymous"])
@pytest.mark.parametrize("name", ROUTE_NAMES)
def test_each_persona_gets_what_the_console_promises(client, world, name, persona):
    """Managers get the page, annotators 403, members of other projects 404, anonymous users the login page."""
    method, url, body, manager_status = _route(world, name)
    user = world["users"][persona]
    if user is not None:
        client.force_login(user)
    response = _send(client, method, url, body)
    expected = {"manager": manager_status, "annotator": 403, "outsider": 404, "anonymous": 302}[persona]
    assert response.status_code == expected, (name, persona, response.content[:300])
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", [name for name in ROUTE_NAMES if name not in POST_ROUTES_EXCLUDED])
def test_every_console_post_is_refused_without_the_csrf_token(world, name):
    method, url, body, _ = _route(world, name)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["users"]["manager"])
    before = _snapshot()
    response = _send(client, method, url, body)
    assert response.status_code == 403
    assert _snapshot() == before


def _snapshot() -> tuple:
    """What the console's POSTs could change."""
    return (
        list(Project.objects.order_by("pk").values_list("archived_at", "title")),
        list(Membership.objects.order_by("pk").values_list("pk", "role")),
        list(Item.objects.order_by("pk").values_list("withdrawn_at", "is_gold", "priority")),
        Job.objects.count(),
        ApiToken.objects.count(),
    )


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/tokens/"),
        ("POST", "/tokens/revoke/"),
        ("POST", "/projects/new/"),
        ("POST", "/p/alpha/settings/"),
        ("POST", "/p/alpha/members/"),
        ("POST", "/p/alpha/import/"),
    ],
)
def test_forms_that_also_show_pages_refuse_posts_without_the_csrf_token(world, method, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["users"]["manager"])
    before = _snapshot()
    assert client.post(url, {"title": "Changed", "name": "t"}).status_code == 403
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("POST", "labeling:manage_job"),
        ("POST", "labeling:manage_job_download"),
        ("GET", "labeling:manage_archive"),
        ("GET", "labeling:manage_item_gold"),
    ],
)
def test_the_wrong_method_is_refused(client, world, method, name):
    client.force_login(world["users"]["manager"])
    args = [world["project"].slug, world["job"]().pk] if "job" in name else [world["project"].slug]
    response = client.generic(method, reverse(name, args=args))
    assert response.status_code == 405


# -- projects -------------------------------------------------------------------


def _settings_form(project: Project, **changes) -> dict:
    form = {
        "title": project.title,
        "guidelines": project.guidelines,
        "mode": project.mode,
        "overlap_kind": "adaptive" if project.adaptive else "fixed",
        "overlap": project.overlap,
        "min_votes": project.min_votes or "",
        "max_votes": project.max_votes or "",
        "lease_seconds": project.lease_seconds,
        "order": project.order,
        "gold_rate": project.gold_rate,
        **criteria_fields(project.criteria, initial=len(project.criteria)),
        "skip_reasons": "\n".join(project.skip_reasons),
        "license": project.license,
        **changes,
    }
    return {name: value for name, value in form.items() if value is not False}


def test_a_manager_changes_the_settings(client, project, manager):
    client.force_login(manager)
    form = _settings_form(
        project,
        title="Helpfulness",
        skip_reasons="Unreadable\nOffensive\n",
        **criteria_fields([{"key": "helpful", "type": "likert", "per_response": True}]),
        rationale_required="on",
        overlap=3,
    )
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), form, follow=True)
    assert response.status_code == 200 and b"Settings saved." in response.content
    project.refresh_from_db()
    assert project.title == "Helpfulness" and project.overlap == 3 and project.rationale_required
    assert project.skip_reasons == ["Unreadable", "Offensive"] and project.criteria[0]["key"] == "helpful"


def test_locked_settings_say_why_and_a_refused_change_changes_nothing(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    page = client.get(reverse("labeling:manage_settings", args=[project.slug])).content.decode()
    assert 'data-testid="locks"' in page and "1 judgment already exists" in page
    assert 'name="mode" disabled' in page or 'disabled name="mode"' in page or 'id="id_mode" disabled' in page
    # A disabled field keeps its value even when a forged form sends another.
    client.post(reverse("labeling:manage_settings", args=[project.slug]), _settings_form(project, mode="ranking"))
    project.refresh_from_db()
    assert project.mode == "pairwise"
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), _settings_form(project, overlap=1))
    assert response.status_code == 422
    assert "overlap may only go up (from 2, got 1)" in response.content.decode()
    project.refresh_from_db()
    assert project.overlap == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"key": "Bad Key", "type": "likert"}, "Key must be lowercase letters, digits or _"),
        ({"key": "ok", "type": "stars"}, "Select a valid choice"),
    ],
)
def test_criteria_errors_name_the_entry(client, project, manager, row, message):
    client.force_login(manager)
    form = _settings_form(project, **criteria_fields([row]))
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), form)
    assert response.status_code == 422 and message in response.content.decode()


def test_the_guidelines_preview_is_sanitized_and_saves_nothing(client, project, manager):
    client.force_login(manager)
    text = "**Prefer** the *honest* answer <script>alert(1)</script> [x](javascript:alert(1))"
    form = _settings_form(project, guidelines=text, preview="1")
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), form, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="guidelines-preview"')
    assert "<strong>Prefer</strong>" in html and "<script>" not in html and 'href="javascript' not in html
    project.refresh_from_db()
    assert project.guidelines == "Pick the **better** answer."
    # Without htmx the whole page comes back, with the preview in it.
    page = client.post(reverse("labeling:manage_settings", args=[project.slug]), form).content.decode()
    assert "<strong>Prefer</strong>" in page and 'data-testid="project-form"' in page


def test_creating_a_project_needs_the_permission_and_makes_the_creator_its_manager(client, manager):
    client.force_login(manager)
    form = {
        "slug": "helpfulness",
        "title": "Helpfulness",
        "mode": "pairwise",
        "overlap_kind": "fixed",
        "overlap": "2",
        "lease_seconds": "600",
        "order": "depth-first",
        "gold_rate": "0",
        "license": "cc-by-4.0",
    }
    assert client.get(reverse("labeling:manage_project_new")).status_code == 403
    assert client.post(reverse("labeling:manage_project_new"), form).status_code == 403
    manager.user_permissions.add(Permission.objects.get(codename="add_project"))
    assert client.get(reverse("labeling:manage_project_new")).status_code == 200
    response = client.post(reverse("labeling:manage_project_new"), form)
    assert response.status_code == 302 and response["Location"] == reverse(
        "labeling:manage_import", args=["helpfulness"]
    )
    project = Project.objects.get(slug="helpfulness")
    assert project.overlap == 2 and project.lease_seconds == 600
    assert Membership.objects.get(project=project).user == manager
    again = client.post(reverse("labeling:manage_project_new"), form)
    assert again.status_code == 422 and "already exists" in again.content.decode()


def test_archive_and_reopen(client, project, manager):
    client.force_login(manager)
    page = client.post(reverse("labeling:manage_archive", args=[project.slug]), follow=True).content.decode()
    assert 'data-testid="archived"' in page and "Reopen project" in page
    project.refresh_from_db()
    assert project.archived_at is not None
    client.post(reverse("labeling:manage_reopen", args=[project.slug]))
    project.refresh_from_db()
    assert project.archived_at is None


def test_managers_see_a_settings_link_on_their_projects(client, project, manager, annotator):
    client.force_login(manager)
    assert reverse("labeling:manage_settings", args=[project.slug]) in client.get("/").content.decode()
    client.force_login(annotator)
    assert reverse("labeling:manage_settings", args=[project.slug]) not in client.get("/").content.decode()


# -- members --------------------------------------------------------------------


def test_adding_changing_and_removing_members(client, world):
    project, manager = world["project"], world["users"]["manager"]
    client.force_login(manager)
    url = reverse("labeling:manage_members", args=[project.slug])
    response = client.post(url, {"username": "otto", "role": "manager"}, follow=True)
    assert "otto is now a manager of this project." in response.content.decode()
    response = client.post(
        url, {"username": "newbie", "role": "annotator", "create": "on", "password": "a long enough passphrase"}
    )
    assert response.status_code == 302
    newbie = Membership.objects.get(project=project, user__username="newbie")
    assert newbie.user.check_password("a long enough passphrase")
    anna = Membership.objects.get(project=project, user__username="anna")
    client.post(reverse("labeling:manage_member_role", args=[project.slug]), {"member": anna.pk, "role": "manager"})
    anna.refresh_from_db()
    assert anna.role == "manager"
    client.post(reverse("labeling:manage_member_remove", args=[project.slug]), {"member": anna.pk})
    assert not Membership.objects.filter(pk=anna.pk).exists()
    assert Judgment.objects.filter(pk=world["judgment"].pk).exists()  # removing keeps their judgments


def test_member_form_errors_are_shown_and_accounts_are_never_changed(client, world):
    project, manager = world["project"], world["users"]["manager"]
    client.force_login(manager)
    url = reverse("labeling:manage_members", args=[project.slug])
    response = client.post(url, {"username": "ghost", "role": "annotator"})
    assert response.status_code == 422 and "does not exist" in response.content.decode()
    response = client.post(url, {"username": "anna", "role": "annotator", "create": "on", "password": "x" * 20})
    assert response.status_code == 422 and "already exists" in response.content.decode()
    world["users"]["annotator"].refresh_from_db()
    assert world["users"]["annotator"].check_password(PASSWORD)
    response = client.post(url, {"username": "newbie", "role": "annotator", "create": "on"})
    assert response.status_code == 422 and "A new user needs a password." in response.content.decode()


def test_the_last_manager_is_told_why_they_cannot_leave(client, world):
    project, manager = world["project"], world["users"]["manager"]
    client.force_login(manager)
    mine = Membership.objects.get(project=project, user=manager)
    response = client.post(
        reverse("labeling:manage_member_remove", args=[project.slug]), {"member": mine.pk}, follow=True
    )
    assert "the project&#x27;s only manager" in response.content.decode()
    assert Membership.objects.filter(pk=mine.pk).exists()


def test_a_member_of_another_project_cannot_be_touched(client, world, other_project):
    stranger = MembershipFactory(project=other_project, role="annotator")
    client.force_login(world["users"]["manager"])
    url = reverse("labeling:manage_member_remove", args=[world["project"].slug])
    assert client.post(url, {"member": stranger.pk}).status_code == 404
    assert Membership.objects.filter(pk=stranger.pk).exists()


# -- import ---------------------------------------------------------------------


def test_a_file_with_a_bad_row_is_previewed_with_its_error_and_nothing_is_imported(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    before = Item.objects.filter(project=project).count()
    rows = [*GOOD_ROWS, '{"prompt": "only a prompt"}', "{broken json"]
    response = client.post(
        reverse("labeling:manage_import", args=[project.slug]), {"file": _jsonl(rows), "format": "auto"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="row-errors"' in html and "<td>5</td>" in html and "is not valid JSON" in html
    assert 'data-testid="shape">flat_pair<' in html and "Import the 3 valid items only" in html
    assert Item.objects.filter(project=project).count() == before


def test_a_file_with_no_valid_row_is_refused_with_its_reasons_and_offers_no_import(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    upload = SimpleUploadedFile("wrong.csv", b"question,answer\nWhat?,This.\n", content_type="text/csv")
    html = client.post(
        reverse("labeling:manage_import", args=[project.slug]), {"file": upload, "format": "auto"}
    ).content.decode()
    assert "The file&#x27;s only row is invalid; nothing was imported" in html
    assert 'data-testid="row-errors"' in html and "<td>1</td>" in html
    assert 'data-testid="start-import"' not in html and "valid items only" not in html


def test_the_preview_renders_untrusted_text_safely(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    rows = [
        {
            "prompt": "Say **hi** <img src=x onerror=alert(1)>",
            "response_a": "<script>alert(1)</script>",
            "response_b": "[a](javascript:alert(1))",
        }
    ]
    html = client.post(reverse("labeling:manage_import", args=[project.slug]), {"file": _jsonl(rows)}).content.decode()
    assert "<strong>hi</strong>" in html
    assert "<script>alert" not in html and "<img" not in html and 'href="javascript' not in html


def test_a_checked_file_is_imported_as_a_job_whose_progress_is_polled(
    client, world, django_capture_on_commit_callbacks
):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    preview = client.post(reverse("labeling:manage_import", args=[project.slug]), {"file": _jsonl(GOOD_ROWS)})
    upload = preview.context["preview"].upload
    start = reverse("labeling:manage_import_start", args=[project.slug])
    # Queued (its task runs on commit): the partial polls itself every second.
    response = client.post(start, {"upload": upload, "format": "auto"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="job"' in html and 'hx-trigger="every 1s"' in html
    job = Job.objects.get(kind=Job.Kind.IMPORT)
    run_job.call(str(job.pk))
    polled = client.get(reverse("labeling:manage_job", args=[project.slug, job.pk]), headers=HTMX).content.decode()
    assert "hx-trigger" not in polled and "Imported <strong>3</strong> items" in polled
    assert Item.objects.filter(project=project, external_id__in=["q0", "q1", "q2"]).count() == 3
    page = client.get(reverse("labeling:manage_import", args=[project.slug])).content.decode()
    assert 'data-testid="imports"' in page and "3 imported of 3 rows" in page
    # An import has no file to hand back: its download address is not found.
    assert client.get(reverse("labeling:manage_job_download", args=[project.slug, job.pk])).status_code == 404


def test_starting_an_import_twice_imports_once(client, world, django_capture_on_commit_callbacks):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    preview = client.post(reverse("labeling:manage_import", args=[project.slug]), {"file": _jsonl(GOOD_ROWS)})
    form = {"upload": preview.context["preview"].upload}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(reverse("labeling:manage_import_start", args=[project.slug]), form)
    assert first.status_code == 302 and "/jobs/" in first["Location"]
    second = client.post(reverse("labeling:manage_import_start", args=[project.slug]), form, follow=True)
    assert "That upload is gone" in second.content.decode()
    assert Job.objects.filter(kind=Job.Kind.IMPORT).count() == 1


# -- export ---------------------------------------------------------------------


def test_an_export_runs_as_a_job_and_its_zip_downloads(client, world, django_capture_on_commit_callbacks):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    with django_capture_on_commit_callbacks(execute=True):  # the job runs once the request commits
        response = client.post(
            reverse("labeling:manage_export", args=[project.slug]), _export_form(margin="on"), headers=HTMX
        )
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
    job = Job.objects.get(kind=Job.Kind.EXPORT)
    html = client.get(reverse("labeling:manage_job", args=[project.slug, job.pk]), headers=HTMX).content.decode()
    assert 'data-testid="download"' in html and job.checksum in html and "hx-trigger" not in html
    assert job.params["margin"] is True
    download = client.get(reverse("labeling:manage_job_download", args=[project.slug, job.pk]))
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert {"README.md", "data/train-00000-of-00001.parquet"} <= set(archive.namelist())
    page = client.get(reverse("labeling:manage_export", args=[project.slug])).content.decode()
    assert page.count(job.checksum) == 1 and "default, conversational, majority, margin" in page


def test_bad_export_settings_are_refused_with_the_reason(client, world):
    client.force_login(world["users"]["manager"])
    response = client.post(
        reverse("labeling:manage_export", args=[world["project"].slug]), _export_form(test_size="1.5")
    )
    assert response.status_code == 422 and "--test-size must be at least 0 and below 1" in response.content.decode()
    assert not Job.objects.exists()


def test_jobs_of_another_project_answer_404(client, world, other_project):
    other_manager = MembershipFactory(project=other_project, role="manager").user
    client.force_login(other_manager)
    job = world["job"]()
    assert client.get(reverse("labeling:manage_job", args=[other_project.slug, job.pk])).status_code == 404
    assert client.get(reverse("labeling:manage_job_download", args=[other_project.slug, job.pk])).status_code == 404


# -- items ----------------------------------------------------------------------


def test_items_are_listed_with_their_judgments_and_found_by_search(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    judged = world["judgment"].item
    page = client.get(reverse("labeling:manage_items", args=[project.slug]), {"open": judged.pk}).content.decode()
    assert f'data-testid="item-{judged.external_id}"' in page and "<td>anna</td>" in page
    found = client.get(
        reverse("labeling:manage_items", args=[project.slug]), {"q": judged.external_id}
    ).content.decode()
    assert found.count('class="item-group') == 1
    by_prompt = client.get(reverse("labeling:manage_items", args=[project.slug]), {"q": judged.prompt[0]["content"]})
    assert by_prompt.content.decode().count('class="item-group') == 1


def _count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_an_items_page_costs_the_same_queries_however_many_items_and_judgments(client, world):
    project = world["project"]
    client.force_login(world["users"]["manager"])
    url = reverse("labeling:manage_items", args=[project.slug])
    small = _count_queries(client, url)
    ItemFactory.create_batch(40, project=project)
    for _ in range(3):
        _judge(project, MembershipFactory(project=project).user)
    assert _count_queries(client, url) == small
    assert _count_queries(client, url + "?page=2") == small


def test_gold_priority_withdraw_and_restore_from_the_items_page(client, world):
    project = world["project"]
    item = world["judgment"].item
    client.force_login(world["users"]["manager"])
    gold = client.post(
        reverse("labeling:manage_item_gold", args=[project.slug]), {"item": item.pk, "answer": "B"}, headers=HTMX
    )
    assert gold.status_code == 200 and gold.content.decode().lstrip().startswith(
        f'<tbody class="item-group" id="item-{item.pk}"'
    )
    item.refresh_from_db()
    assert item.is_gold and item.gold_answer == [[1], [0]]
    refused = client.post(reverse("labeling:manage_item_gold", args=[project.slug]), {"item": item.pk}, headers=HTMX)
    assert refused.status_code == 422 and "Choose the gold answer: A, B or Tie." in refused.content.decode()
    client.post(reverse("labeling:manage_item_gold", args=[project.slug]), {"item": item.pk, "gold": "off"})
    client.post(reverse("labeling:manage_item_priority", args=[project.slug]), {"item": item.pk, "priority": "7"})
    item.refresh_from_db()
    assert not item.is_gold and item.priority == 7
    back = client.post(
        reverse("labeling:manage_item_withdraw", args=[project.slug]),
        {"item": item.pk, "next": reverse("labeling:manage_items", args=[project.slug]) + "?q=x"},
    )
    assert back["Location"] == reverse("labeling:manage_items", args=[project.slug]) + "?q=x"
    item.refresh_from_db()
    assert item.withdrawn_at is not None
    elsewhere = client.post(
        reverse("labeling:manage_item_restore", args=[project.slug]), {"item": item.pk, "next": "https://evil.example/"}
    )
    assert elsewhere["Location"] == reverse("labeling:manage_items", args=[project.slug])
    item.refresh_from_db()
    assert item.withdrawn_at is None


def test_an_item_of_another_project_answers_404(client, world, other_project):
    foreign = ItemFactory(project=other_project)
    client.force_login(world["users"]["manager"])
    response = client.post(reverse("labeling:manage_item_withdraw", args=[world["project"].slug]), {"item": foreign.pk})
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.withdrawn_at is None


def test_an_annotator_holding_a_withdrawn_item_is_told_and_moves_on(client, world):
    project, annotator = world["project"], world["users"]["annotator"]
    held = assignment_next(project=project, annotator=annotator)
    manager_client = Client()
    manager_client.force_login(world["users"]["manager"])
    manager_client.post(reverse("labeling:manage_item_withdraw", args=[project.slug]), {"item": held.item_id})
    client.force_login(annotator)
    response = client.post(reverse("labeling:judge", args=[project.slug, held.pk]), {"choice": "A"}, headers=HTMX)
    assert response.status_code == 200  # not a form to fix: the next item, with the notice
    assert "This item was withdrawn by a manager; your answer was not needed. Moving on." in response.content.decode()
    assert not Judgment.objects.filter(assignment=held).exists()
    nxt = assignment_next(project=project, annotator=annotator)
    assert nxt is not None and nxt.item_id != held.item_id
    assert Assignment.objects.get(pk=held.pk).state == Assignment.State.EXPIRED


# -- tokens ---------------------------------------------------------------------


def test_a_token_is_shown_once_and_can_be_revoked(client, annotator):
    client.force_login(annotator)
    response = client.post(reverse("labeling:manage_tokens"), {"name": "export script"})
    token = response.context["created"]["token"]
    assert token in response.content.decode() and "no-store" in response["Cache-Control"]
    listing = client.get(reverse("labeling:manage_tokens")).content.decode()
    assert token not in listing and "export script" in listing
    row = ApiToken.objects.get(user=annotator)
    assert row.name == "export script" and row.key_hash != token
    client.post(reverse("labeling:manage_token_revoke"), {"token": row.pk})
    row.refresh_from_db()
    assert row.revoked_at is not None
    api = client.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401


def test_nobody_revokes_another_users_token(client, annotator, manager):
    row, _ = token_create(username=annotator.username)
    client.force_login(manager)
    assert client.post(reverse("labeling:manage_token_revoke"), {"token": row.pk}).status_code == 404
    assert f'data-testid="token-{row.pk}"' not in client.get(reverse("labeling:manage_tokens")).content.decode()
    row.refresh_from_db()
    assert row.revoked_at is None
