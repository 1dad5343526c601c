"""Every route, tried by every persona, against one declared table of who may do what.

Routes are found by walking the URL resolver, so a new route fails this test until
it is declared here. Objects are addressed by opaque ids; another project's answer 404.
"""

import io

import pytest
from django.urls import URLResolver, get_resolver

from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import job_export_start
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.tokens import token_create
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

PERSONAS = ("anonymous", "outsider", "other_manager", "annotator", "manager")
AN, OU, OM, AT, MA = PERSONAS  # short names for the table

# route pattern -> (method, {persona: expected status}); API routes use bearer tokens.
TABLE = {
    "": ("GET", {AN: 302, OU: 200, OM: 200, AT: 200, MA: 200}),
    "login/": ("GET", dict.fromkeys(PERSONAS, 200)),
    "logout/": ("GET", dict.fromkeys(PERSONAS, 405)),
    "p/<slug:slug>/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/stats/refresh/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 302}),
    "p/<slug:slug>/stats/status/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/annotate/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 200, MA: 200}),
    "p/<slug:slug>/annotate/<str:assignment_id>/judge/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 302, MA: 404}),
    "p/<slug:slug>/annotate/<str:assignment_id>/skip/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 302, MA: 404}),
    "p/<slug:slug>/history/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 200, MA: 200}),
    "p/<slug:slug>/judgments/<str:judgment_id>/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 200, MA: 404}),
    "api/openapi.json": ("GET", dict.fromkeys(PERSONAS, 200)),
    "api/docs": ("GET", dict.fromkeys(PERSONAS, 200)),
    "api/": ("GET", dict.fromkeys(PERSONAS, 404)),
    "api/projects/<slug>/next": ("POST", {AN: 401, OU: 404, OM: 404, AT: 200, MA: 200}),
    "api/assignments/<assignment_id>/judgment": ("POST", {AN: 401, OU: 404, OM: 404, AT: 201, MA: 404}),
    "api/assignments/<assignment_id>/skip": ("POST", {AN: 401, OU: 404, OM: 404, AT: 200, MA: 404}),
    "api/projects/<slug>/stats": ("GET", {AN: 401, OU: 404, OM: 404, AT: 200, MA: 200}),
    "api/projects": ("GET", {AN: 401, OU: 200, OM: 200, AT: 200, MA: 200}),
    "api/projects/<slug>/members": ("POST", {AN: 401, OU: 404, OM: 404, AT: 404, MA: 200}),
    "api/projects/<slug>/imports": ("POST", {AN: 401, OU: 404, OM: 404, AT: 404, MA: 202}),
    "api/projects/<slug>/exports": ("POST", {AN: 401, OU: 404, OM: 404, AT: 404, MA: 202}),
    "api/jobs/<job_id>": ("GET", {AN: 401, OU: 404, OM: 404, AT: 404, MA: 200}),
    "api/jobs/<job_id>/download": ("GET", {AN: 401, OU: 404, OM: 404, AT: 404, MA: 200}),
    # The manager's console (issue #6): annotators 403, outsiders 404. Objects inside a
    # project are named in the form; an empty form names none, so the manager gets 404.
    "projects/new/": ("GET", {AN: 302, OU: 403, OM: 403, AT: 403, MA: 403}),  # needs labeling.add_project
    "tokens/": ("GET", {AN: 302, OU: 200, OM: 200, AT: 200, MA: 200}),
    "tokens/revoke/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 404, MA: 404}),
    "p/<slug:slug>/settings/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/archive/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 302}),
    "p/<slug:slug>/reopen/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 302}),
    "p/<slug:slug>/members/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/members/role/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
    "p/<slug:slug>/members/remove/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
    "p/<slug:slug>/import/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/import/start/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 302}),
    "p/<slug:slug>/import/discard/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 302}),
    "p/<slug:slug>/export/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/jobs/<job_id>/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/jobs/<job_id>/download/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/items/": ("GET", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 200}),
    "p/<slug:slug>/items/gold/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
    "p/<slug:slug>/items/priority/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
    "p/<slug:slug>/items/withdraw/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
    "p/<slug:slug>/items/restore/": ("POST", {AN: 302, OU: 404, OM: 404, AT: 403, MA: 404}),
}
BODIES = {
    "p/<slug:slug>/annotate/<str:assignment_id>/judge/": {"choice": "A"},
    "api/assignments/<assignment_id>/judgment": "ranking",
    "api/projects/<slug>/members": {"username": "member", "role": "annotator"},
    "api/projects/<slug>/imports": "upload",
}


def _routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) != "admin/":  # the admin checks staff status itself
                yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def test_every_route_is_declared():
    assert sorted(set(_routes())) == sorted(TABLE)


@pytest.fixture
def world(db, client, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.LABELING_JOBS_DIR = tmp_path
    project = ProjectFactory(slug="inside", overlap=2)
    other = ProjectFactory(slug="elsewhere")
    users = {
        AT: MembershipFactory(project=project, user__username="member").user,
        MA: MembershipFactory(project=project, role="manager", user__username="boss").user,
        OU: MembershipFactory(project=other, user__username="stranger").user,
        OM: MembershipFactory(project=other, role="manager", user__username="other-boss").user,
    }
    ItemFactory.create_batch(3, project=project)
    judged = assignment_next(project=project, annotator=users[AT])
    judgment, _ = judgment_submit(
        assignment_id=judged.pk, annotator=users[AT], ranking=ranking_from_choice(assignment=judged, choice="A")
    )
    leased = assignment_next(project=project, annotator=users[AT])

    def job():  # an export job costs a second or so: made only for the routes that need one
        with django_capture_on_commit_callbacks(execute=True):
            return job_export_start(project=project, user=users[MA], options=ExportOptions())

    return {"project": project, "users": users, "assignment": leased, "judgment": judgment, "job": job}


def _url(route: str, world) -> str:
    return "/" + (
        route.replace("<slug:slug>", world["project"].slug)
        .replace("<slug>", world["project"].slug)
        .replace("<str:assignment_id>", str(world["assignment"].pk))
        .replace("<assignment_id>", str(world["assignment"].pk))
        .replace("<str:judgment_id>", str(world["judgment"].pk))
        .replace("<job_id>", str(world["job"]().pk) if "<job_id>" in route else "")
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("route", sorted(TABLE))
def test_route_answers_each_persona_as_declared(client, world, route, persona):
    method, expected = TABLE[route]
    user = world["users"].get(persona)
    headers = {}
    if route.startswith("api/"):
        if user is not None:
            headers["Authorization"] = f"Bearer {token_create(username=user.username)[1]}"
    elif user is not None:
        client.force_login(user)
    body = BODIES.get(route, {})
    if body == "ranking":
        body = {"ranking": [[str(pk)] for pk in world["assignment"].shown_order]}
    if method == "GET":
        response = client.get(_url(route, world), headers=headers)
    elif body == "upload":
        upload = io.BytesIO(b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n')
        upload.name = "one.jsonl"
        response = client.post(_url(route, world), {"file": upload}, headers=headers)
    elif route.startswith("api/"):
        response = client.post(_url(route, world), body, content_type="application/json", headers=headers)
    else:
        response = client.post(_url(route, world), body, headers=headers)
    assert response.status_code == expected[persona], (route, persona, response.content[:200])
    if response.get("Content-Type", "").startswith("text/html"):  # every page, the API's docs page included
        assert "default-src 'self'" in response.get("Content-Security-Policy", ""), (route, persona)


def test_the_admin_and_error_pages_carry_the_policy(client, world, settings):
    settings.DEBUG = False
    for url in ("/admin/login/", "/no/such/page/", "/api/docs"):
        response = client.get(url)
        assert response["Content-Type"].startswith("text/html"), url
        assert "script-src 'self'" in response["Content-Security-Policy"], url


@pytest.mark.parametrize("route", sorted(route for route, (method, _) in TABLE.items() if method == "POST"))
def test_every_form_post_enforces_csrf(world, route):
    """Browser POSTs need the CSRF token; API POSTs use bearer tokens and never cookies."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    manager = world["users"][MA]
    if route.startswith("api/"):
        client.force_login(manager)  # a session cookie alone must not authenticate the API
        response = client.post(_url(route, world), {}, content_type="application/json")
        assert response.status_code == 401
        return
    client.force_login(world["users"][AT] if "annotate" in route else manager)
    response = client.post(_url(route, world), BODIES.get(route, {}))
    assert response.status_code == 403
