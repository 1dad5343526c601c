"""JSON API (bearer tokens): parse, call the same services as the browser, serialize.

The OpenAPI schema is served at /api/openapi.json.
"""

import json

from django.db import DataError
from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import File, Form, NinjaAPI, Schema, Status, UploadedFile
from ninja.security import HttpBearer

from labeling.access import assignment_for_user, job_for_user, project_for_user, projects_for_user
from labeling.models import Assignment, Membership
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import DomainError, NotFound
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import (
    job_download_name,
    job_download_path,
    job_export_start,
    job_import_start,
    job_status,
)
from labeling.services.judgments import judgment_submit
from labeling.services.members import membership_add
from labeling.services.metrics import project_stats
from labeling.services.projects import project_create_managed
from labeling.services.tokens import token_user


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        user = token_user(token=token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(title="Feedback labeling API", version="1", auth=BearerToken(), urls_namespace="api")


@api.exception_handler(DomainError)
def domain_error(request, error: DomainError):
    return api.create_response(request, {"detail": error.message}, status=error.status)


@api.exception_handler(DataError)
def data_error(request, error: DataError):
    """Input the database cannot store (a NUL byte, say) that no check caught: refused, nothing written."""
    return api.create_response(request, {"detail": "The request holds text the database cannot store."}, status=400)


class Message(Schema):
    role: str
    content: str


class ResponseOut(Schema):
    id: str
    content: str
    model: str | None = None


class ItemOut(Schema):
    id: str
    prompt: list[Message]
    responses: list[ResponseOut]


class AssignmentOut(Schema):
    assignment: str
    expires_at: str
    item: ItemOut


class JudgmentIn(Schema):
    ranking: list[list[str | int]]
    strength: int | None = None
    both_bad: bool = False
    rationale: str = ""
    criteria: dict = {}


class JudgmentOut(Schema):
    judgment: str


class SkipIn(Schema):
    reason: str = ""


class SkipOut(Schema):
    assignment: str
    state: str


def _json(status: int, data: dict) -> HttpResponse:
    """What django-ninja would send for `data` (already in the declared schema's shape), without re-validating it."""
    return HttpResponse(json.dumps(data), status=status, content_type="application/json; charset=utf-8")


def _prompt_plain(prompt) -> bool:
    """True when the prompt already is what `list[Message]` would make of it (string roles and contents only)."""
    return isinstance(prompt, list) and all(
        type(message) is dict
        and message.keys() == {"role", "content"}
        and type(message["role"]) is str
        and type(message["content"]) is str
        for message in prompt
    )


def _assignment_out(assignment: Assignment) -> dict:
    item = assignment.item
    show_models = assignment.project.show_model_names
    return {
        "assignment": str(assignment.pk),
        "expires_at": assignment.expires_at.isoformat(),
        "item": {
            "id": item.external_id,
            "prompt": item.prompt,
            "responses": [
                {
                    "id": str(response.pk),
                    "content": response.content,
                    **({"model": response.model} if show_models else {}),
                }
                for response in assignment.responses_shown()
            ],
        },
    }


@api.post("/projects/{slug}/next", response={200: AssignmentOut, 204: None}, exclude_none=True)
def next_item(request, slug: str):
    """Lease the next item (or return the lease already held); 204 when nothing is left."""
    project = project_for_user(request.user, slug)
    assignment = assignment_next(project=project, annotator=request.user)
    if assignment is None:
        return Status(204, None)
    assignment.project = project
    body = _assignment_out(assignment)
    if not _prompt_plain(body["item"]["prompt"]):
        return Status(200, body)  # let the schema coerce it, as it always did
    return _json(200, body)


@api.post("/assignments/{assignment_id}/judgment", response={200: JudgmentOut, 201: JudgmentOut})
def submit_judgment(request, assignment_id: str, payload: JudgmentIn):
    """Store a judgment: 201 the first time, 200 with the same id on a retry."""
    # The service finds the assignment among the user's own, in a project they belong
    # to, and locks it, in one statement: a lookup here first would cost a second one.
    judgment, created = judgment_submit(
        assignment_id=assignment_id,
        annotator=request.user,
        ranking=payload.ranking,
        strength=payload.strength,
        both_bad=payload.both_bad,
        rationale=payload.rationale,
        criteria=payload.criteria,
    )
    return _json(201 if created else 200, {"judgment": str(judgment.pk)})


@api.post("/assignments/{assignment_id}/skip", response={200: SkipOut})
def skip(request, assignment_id: str, payload: SkipIn | None = None):
    assignment = assignment_for_user(request.user, assignment_id)
    skipped = assignment_skip(assignment=assignment, annotator=request.user, reason=payload.reason if payload else "")
    return {"assignment": str(skipped.pk), "state": skipped.state}


@api.get("/projects/{slug}/stats")
def stats(request, slug: str):
    """Progress, agreement, annotators and leaderboard (the same document as `project_stats --json`)."""
    return project_stats(project=project_for_user(request.user, slug))


# -- projects and members ----------------------------------------------------


class ProjectIn(Schema):
    slug: str
    title: str = ""
    mode: str = "pairwise"
    overlap: int = 1
    guidelines: str = ""
    min_votes: int | None = None
    max_votes: int | None = None
    gold_rate: float = 0.0
    criteria: list[dict] = []
    skip_reasons: list[str] = []
    rationale_required: bool = False
    show_model_names: bool = False
    license: str = ""  # not set unless given


class ProjectOut(Schema):
    slug: str
    title: str
    mode: str
    overlap: int
    min_votes: int | None
    max_votes: int | None
    role: str | None = None


class MemberIn(Schema):
    username: str
    role: str = "annotator"
    create: bool = False


class MemberOut(Schema):
    username: str
    role: str


def _project_out(project, role=None) -> dict:
    fields = ("slug", "title", "mode", "overlap", "min_votes", "max_votes")
    return {**{name: getattr(project, name) for name in fields}, "role": role}


@api.get("/projects", response=list[ProjectOut])
def list_projects(request):
    """The projects you belong to, with your role."""
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    return [_project_out(project, roles.get(project.pk)) for project in projects_for_user(request.user)]


@api.post("/projects", response={201: ProjectOut})
def create_project(request, payload: ProjectIn):
    """Create a project (needs the add-project permission); you become its manager."""
    if not request.user.has_perm("labeling.add_project"):
        raise NotFound("You may not create projects; ask an administrator for the permission.")
    project = project_create_managed(creator=request.user, **payload.dict())
    return Status(201, _project_out(project, Membership.Role.MANAGER))


@api.post("/projects/{slug}/members", response=MemberOut)
def add_member(request, slug: str, payload: MemberIn):
    """Add a user to the project, or change their role (managers only); `create` makes a missing account.

    An account made here has no working password until an administrator sets one.
    """
    project = project_for_user(request.user, slug, manager=True)
    membership = membership_add(project=project, username=payload.username, role=payload.role, create=payload.create)
    return {"username": membership.user.username, "role": membership.role}


# -- imports and exports, as background jobs ----------------------------------


class JobOut(Schema):
    job: str
    kind: str
    state: str
    rows_done: int
    rows_total: int | None
    result: dict
    error: str | None
    checksum: str | None
    created_at: str
    finished_at: str | None


class ExportIn(Schema):
    config: str = "default"
    style: str = "conversational"
    aggregate: str = "majority"
    margin: bool = False
    min_agreement: float | None = None
    test_size: float = 0.0
    seed: int = 0
    include_gold: bool = False


@api.post("/projects/{slug}/imports", response={202: JobOut})
def start_import(
    request, slug: str, file: File[UploadedFile], format: Form[str] = "auto", skip_invalid: Form[bool] = False
):
    """Upload a file (JSONL, JSON, CSV or Parquet) and import it as a job; poll /api/jobs/{id}."""
    project = project_for_user(request.user, slug, manager=True)
    job = job_import_start(project=project, user=request.user, upload=file, fmt=format, skip_invalid=skip_invalid)
    return Status(202, job_status(job=job))


@api.post("/projects/{slug}/exports", response={202: JobOut})
def start_export(request, slug: str, payload: ExportIn):
    """Export preferences as a job; download the zip (Hub layout) from /api/jobs/{id}/download."""
    project = project_for_user(request.user, slug, manager=True)
    job = job_export_start(project=project, user=request.user, options=ExportOptions(**payload.dict()))
    return Status(202, job_status(job=job))


@api.get("/jobs/{job_id}", response=JobOut)
def get_job(request, job_id: str):
    """A job's state and progress (rows done of rows total)."""
    return job_status(job=job_for_user(request.user, job_id))


@api.get("/jobs/{job_id}/download")
def download(request, job_id: str):
    """The finished export: a zip of Parquet files and a README.md dataset card."""
    job = job_for_user(request.user, job_id)
    path = job_download_path(job=job)
    name = job_download_name(job=job)
    return FileResponse(path.open("rb"), as_attachment=True, filename=name, content_type="application/zip")
