"""Lookups the access module makes on every API request, written by hand (see sql.py)."""

from labeling.db import sql
from labeling.models import Project


def project_of_member(*, slug: str, user_id: int, role: str | None = None) -> Project | None:
    """The project named `slug` if the user is a member of it (with `role`, when given)."""
    query = (
        f"SELECT {sql.columns(Project, 'p')} FROM labeling_project p"  # noqa: S608 - column names, values are params
        " INNER JOIN labeling_membership m ON m.project_id = p.id"
        " WHERE p.slug = %s AND m.user_id = %s"
    )
    params: list = [slug, user_id]
    if role is not None:
        query += " AND m.role = %s"
        params.append(role)
    row = sql.one(query + " LIMIT 1", params)
    if row is None:
        return None
    (project,) = sql.load_joined(row, Project)
    return project
