"""Criteria edited as rows of a form (key, label, type, per response, required, remove), on the
settings page and the new-project page; the criteria service keeps the rules and its errors are
shown beside the row they name."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from labeling.models import Project
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.projects import project_update

HELPFUL = {"key": "helpful", "label": "Helpful", "type": "likert", "per_response": True, "required": True}
NOTES = {"key": "notes", "label": "Anything else?", "type": "text", "per_response": False, "required": False}


def criteria_fields(rows: list[dict], *, initial: int = 0, empty: int = 1) -> dict:
    """The formset's fields as a browser posts them: `initial` saved rows first, then new ones, then empty rows.

    A row may carry "DELETE": True. Unchecked boxes are left out, as browsers do.
    """
    form = {
        "criteria-TOTAL_FORMS": str(len(rows) + empty),
        "criteria-INITIAL_FORMS": str(initial),
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate([*rows, *[{"type": "likert", "per_response": True}] * empty]):
        for name in ("key", "label", "type"):
            form[f"criteria-{index}-{name}"] = row.get(name, "")
        for name in ("per_response", "required", "DELETE"):
            if row.get(name):
                form[f"criteria-{index}-{name}"] = "on"
    return form


def settings_form(project: Project, rows: list[dict] | None = None, **changes) -> dict:
    """The settings page's form for `project`, its criteria as saved unless `rows` are given."""
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
        "skip_reasons": "\n".join(project.skip_reasons),
        "license": project.license or "cc-by-4.0",  # the settings form asks for one
        **criteria_fields(project.criteria if rows is None else rows, initial=len(project.criteria)),
        **changes,
    }
    return {name: value for name, value in form.items() if value is not False}


def given(project: Project, criteria: list[dict]) -> None:
    project_update(project=project, criteria=criteria)
    project.refresh_from_db()


def criterion_rows(html: str) -> list[str]:
    """Each criterion's part of the page (its inputs and its errors), in order; the add-a-row template left out."""
    html = html.split("<template data-criterion-template>")[0]
    return re.findall(r'<tbody class="criterion[^"]*".*?</tbody>', html, flags=re.S)


def field_tag(row: str, name: str) -> str:
    return re.search(rf'<(?:input|select)[^>]*name="criteria-\d+-{name}"[^>]*>', row).group(0)


@pytest.fixture
def judged(project, annotator, items):
    """A project with criteria and one judgment that answers them: the criteria are locked."""
    given(project, [HELPFUL, NOTES])
    assignment = assignment_next(project=project, annotator=annotator)
    judgment_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        ranking=ranking_from_choice(assignment=assignment, choice="A"),
        criteria={"helpful": {str(pk): 4 for pk in assignment.shown_order}},
    )
    project.refresh_from_db()
    return project


def test_the_settings_page_shows_criteria_as_rows_with_an_empty_one_to_add(client, project, manager):
    given(project, [HELPFUL])
    client.force_login(manager)
    html = client.get(reverse("labeling:manage_settings", args=[project.slug])).content.decode()
    assert 'name="criteria"' not in html  # no JSON textarea any more
    assert 'name="criteria-TOTAL_FORMS" value="2"' in html and 'name="criteria-INITIAL_FORMS" value="1"' in html
    saved, empty = criterion_rows(html)
    assert 'value="helpful"' in field_tag(saved, "key") and 'value="Helpful"' in field_tag(saved, "label")
    assert "checked" in field_tag(saved, "required") and "disabled" not in field_tag(saved, "key")
    assert 'value="' not in field_tag(empty, "key")
    assert "Add a criterion" in html and "data-criterion-template" in html


def test_a_manager_adds_two_criteria_through_the_rows(client, project, manager):
    client.force_login(manager)
    url = reverse("labeling:manage_settings", args=[project.slug])
    response = client.post(url, settings_form(project, [HELPFUL, NOTES]), follow=True)
    assert response.status_code == 200 and "Settings saved." in response.content.decode()
    project.refresh_from_db()
    assert project.criteria == [HELPFUL, NOTES]
    rows = criterion_rows(response.content.decode())
    assert len(rows) == 3  # the two, and an empty row for the next one
    assert 'value="notes"' in field_tag(rows[1], "key") and '<option value="text" selected>' in rows[1]


def test_an_empty_label_takes_one_from_the_key(client, project, manager):
    client.force_login(manager)
    row = {"key": "is_safe", "type": "flag", "per_response": False}
    client.post(reverse("labeling:manage_settings", args=[project.slug]), settings_form(project, [row]))
    project.refresh_from_db()
    assert project.criteria == [{**row, "label": "Is safe", "required": False}]


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"key": "Bad Key", "type": "likert"}, "key", "Key must be lowercase letters, digits or _"),
        ({"key": "helpful", "type": "flag"}, "key", "Key &#x27;helpful&#x27; is used twice."),
        ({"label": "No key", "type": "likert"}, "key", "Key must be lowercase letters"),
        ({"key": "ok", "type": "stars"}, "type", "Select a valid choice"),
    ],
)
def test_a_bad_row_is_refused_beside_that_row_and_nothing_changes(client, project, manager, row, field, message):
    given(project, [HELPFUL])
    client.force_login(manager)
    form = settings_form(project, [HELPFUL, row], title="Renamed")
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), form)
    html = response.content.decode()
    assert response.status_code == 422
    first, second = criterion_rows(html)[:2]
    assert message in second and message not in first and "is-invalid" in second
    assert 'data-testid="form-error"' in html and "Check the criteria" in html
    if field == "key" and "valid choice" not in message:
        assert 'aria-invalid="true"' in field_tag(second, "key")
    project.refresh_from_db()
    assert project.criteria == [HELPFUL] and project.title != "Renamed"


def test_removing_a_row_removes_the_criterion(client, project, manager):
    given(project, [HELPFUL, NOTES])
    client.force_login(manager)
    form = settings_form(project, [{**HELPFUL, "DELETE": True}, NOTES])
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), form)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.criteria == [NOTES]


def test_a_removed_row_with_a_bad_key_is_simply_dropped(client, project, manager):
    client.force_login(manager)
    form = settings_form(project, [HELPFUL, {"key": "Bad Key", "type": "likert", "DELETE": True}])
    assert client.post(reverse("labeling:manage_settings", args=[project.slug]), form).status_code == 302
    project.refresh_from_db()
    assert project.criteria == [HELPFUL]


def test_a_locked_criterion_is_shown_read_only_with_the_reason(client, judged, manager):
    client.force_login(manager)
    html = client.get(reverse("labeling:manage_settings", args=[judged.slug])).content.decode()
    helpful, _notes, empty = criterion_rows(html)
    for name in ("key", "type", "per_response"):
        assert "disabled" in field_tag(helpful, name)
    assert "disabled" not in field_tag(helpful, "label") and "disabled" not in field_tag(helpful, "required")
    assert "DELETE" not in helpful and "Locked" in helpful and "data-locked" in helpful
    assert "disabled" not in field_tag(empty, "key") and "DELETE" in empty  # new criteria may be added
    assert 'data-testid="lock-criteria"' in html and "Existing criteria keep their key, type" in html


def test_a_locked_criterion_cannot_change_key_or_type_but_its_label_can_change(client, judged, manager):
    client.force_login(manager)
    forged = {**HELPFUL, "key": "renamed", "type": "text", "per_response": False, "label": "Useful", "DELETE": True}
    added = {"key": "safe", "type": "flag", "per_response": False}
    form = settings_form(judged, [forged, NOTES, added])
    response = client.post(reverse("labeling:manage_settings", args=[judged.slug]), form)
    assert response.status_code == 302
    judged.refresh_from_db()
    assert judged.criteria == [
        {**HELPFUL, "label": "Useful"},
        NOTES,
        {**added, "label": "Safe", "required": False},
    ]


def test_a_forged_form_that_drops_a_locked_criterion_is_refused_by_the_service(client, judged, manager):
    client.force_login(manager)
    form = {**settings_form(judged, [NOTES]), "criteria-INITIAL_FORMS": "0"}  # rows posing as new ones
    response = client.post(reverse("labeling:manage_settings", args=[judged.slug]), form)
    assert response.status_code == 422
    assert "criterion &#x27;helpful&#x27; cannot be removed" in response.content.decode()
    judged.refresh_from_db()
    assert judged.criteria == [HELPFUL, NOTES]


def test_a_post_without_the_criteria_rows_keeps_the_criteria(client, project, manager):
    given(project, [HELPFUL])
    client.force_login(manager)
    form = {name: value for name, value in settings_form(project).items() if not name.startswith("criteria-")}
    assert (
        client.post(reverse("labeling:manage_settings", args=[project.slug]), {**form, "title": "New"}).status_code
        == 302
    )
    project.refresh_from_db()
    assert project.title == "New" and project.criteria == [HELPFUL]


@pytest.mark.parametrize(("persona", "status"), [("annotator", 403), ("outsider", 404)])
def test_only_managers_edit_criteria(client, project, manager, annotator, outsider, persona, status):
    client.force_login({"annotator": annotator, "outsider": outsider}[persona])
    url = reverse("labeling:manage_settings", args=[project.slug])
    assert client.get(url).status_code == status
    assert client.post(url, settings_form(project, [HELPFUL])).status_code == status
    project.refresh_from_db()
    assert project.criteria == []


def test_criteria_posts_need_the_csrf_token(project, manager):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(reverse("labeling:manage_settings", args=[project.slug]), settings_form(project, [HELPFUL]))
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.criteria == []


def _new_project_form(rows: list[dict]) -> dict:
    return {
        "slug": "helpfulness",
        "title": "Helpfulness",
        "mode": "pairwise",
        "overlap_kind": "fixed",
        "overlap": "1",
        "lease_seconds": "600",
        "order": "depth-first",
        "gold_rate": "0",
        "license": "cc-by-4.0",
        **criteria_fields(rows),
    }


def test_a_new_project_gets_its_criteria_from_the_rows(client, manager):
    manager.user_permissions.add(Permission.objects.get(codename="add_project"))
    client.force_login(manager)
    html = client.get(reverse("labeling:manage_project_new")).content.decode()
    assert len(criterion_rows(html)) == 1 and 'name="criteria-TOTAL_FORMS" value="1"' in html
    bad = client.post(
        reverse("labeling:manage_project_new"), _new_project_form([HELPFUL, {"key": "2fast", "type": "flag"}])
    )
    assert bad.status_code == 422 and "Key must be lowercase" in criterion_rows(bad.content.decode())[1]
    assert not Project.objects.filter(slug="helpfulness").exists()
    response = client.post(reverse("labeling:manage_project_new"), _new_project_form([HELPFUL, NOTES]))
    assert response.status_code == 302
    assert Project.objects.get(slug="helpfulness").criteria == [HELPFUL, NOTES]
