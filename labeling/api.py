"""JSON API (bearer tokens): parse, call the same services as the browser, serialize.

The OpenAPI schema is served at /api/openapi.json.
"""

from django.http import HttpRequest
from ninja import NinjaAPI, Schema, Status
from ninja.security import HttpBearer

from labeling.access import assignment_for_user, project_for_user
from labeling.models import Assignment
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import DomainError
from labeling.services.judgments import judgment_submit
from labeling.services.metrics import project_stats
from labeling.services.projects import token_authenticate


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        user = token_authenticate(token=token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(title="Feedback labeling API", version="1", auth=BearerToken(), urls_namespace="api")


@api.exception_handler(DomainError)
def domain_error(request, error: DomainError):
    return api.create_response(request, {"detail": error.message}, status=error.status)


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


def _assignment_out(assignment: Assignment) -> dict:
    item = assignment.item
    show_models = assignment.project.show_model_names
    responses = {response.pk: response for response in item.responses.all()}
    return {
        "assignment": str(assignment.pk),
        "expires_at": assignment.expires_at.isoformat(),
        "item": {
            "id": item.external_id,
            "prompt": item.prompt,
            "responses": [
                {
                    "id": str(pk),
                    "content": responses[pk].content,
                    **({"model": responses[pk].model} if show_models else {}),
                }
                for pk in assignment.shown_order
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
    return Status(200, _assignment_out(assignment))


@api.post("/assignments/{assignment_id}/judgment", response={200: JudgmentOut, 201: JudgmentOut})
def submit_judgment(request, assignment_id: str, payload: JudgmentIn):
    """Store a judgment: 201 the first time, 200 with the same id on a retry."""
    assignment = assignment_for_user(request.user, assignment_id)
    judgment, created = judgment_submit(
        assignment=assignment,
        annotator=request.user,
        ranking=payload.ranking,
        strength=payload.strength,
        both_bad=payload.both_bad,
        rationale=payload.rationale,
        criteria=payload.criteria,
    )
    return Status(201 if created else 200, {"judgment": str(judgment.pk)})


@api.post("/assignments/{assignment_id}/skip", response={200: SkipOut})
def skip(request, assignment_id: str, payload: SkipIn | None = None):
    assignment = assignment_for_user(request.user, assignment_id)
    skipped = assignment_skip(assignment=assignment, annotator=request.user, reason=payload.reason if payload else "")
    return {"assignment": str(skipped.pk), "state": skipped.state}


@api.get("/projects/{slug}/stats")
def stats(request, slug: str):
    """Progress, agreement, annotators and leaderboard (the same document as `project_stats --json`)."""
    return project_stats(project=project_for_user(request.user, slug))
