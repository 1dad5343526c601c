"""Parse the annotate form into what the judgment services take. Validation only."""

from django.http import QueryDict

from labeling.models import Assignment, Project
from labeling.services.errors import InvalidInput
from labeling.services.judgments import ranking_from_choice, ranking_from_ranks


def judgment_from_post(post: QueryDict, *, assignment: Assignment, project: Project) -> dict:
    """The keyword arguments of judgment_submit / judgment_revise from a POSTed form."""
    if project.mode == Project.Mode.RANKING or len(assignment.shown_order) > 2:
        ranks = {str(pk): post.get(f"rank_{pk}", "") for pk in assignment.shown_order}
        missing = [pk for pk, rank in ranks.items() if not rank]
        if missing:
            raise InvalidInput("Give every response a rank (1 = best; equal ranks are a tie).")
        ranking = ranking_from_ranks(assignment=assignment, ranks=ranks)
    else:
        ranking = ranking_from_choice(assignment=assignment, choice=post.get("choice", ""))
    strength = post.get("strength") or None
    if strength is not None:
        try:
            strength = int(strength)
        except ValueError:
            raise InvalidInput("Choose how much better: slightly, clearly or much.") from None
    return {
        "ranking": ranking,
        "strength": strength,
        "both_bad": post.get("both_bad") in {"on", "1", "true"},
        "rationale": post.get("rationale", ""),
        "criteria": criteria_from_post(post, project, assignment),
    }


def criteria_from_post(post: QueryDict, project: Project, assignment: Assignment) -> dict:
    """Criteria answers as the form sent them (also used to show a refused form again)."""
    answers: dict = {}
    for definition in project.criteria or []:
        key = definition["key"]
        if definition.get("per_response"):
            values = {str(pk): post.get(f"criteria.{key}.{pk}") for pk in assignment.shown_order}
            if definition["type"] == "flag":
                values = {pk: value == "on" for pk, value in values.items()}
            answers[key] = {pk: value for pk, value in values.items() if value not in (None, "")}
        elif definition["type"] == "flag":
            answers[key] = post.get(f"criteria.{key}") == "on"
        else:
            answers[key] = post.get(f"criteria.{key}") or None
    return answers
