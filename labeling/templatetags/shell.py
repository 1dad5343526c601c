"""The app shell's project tabs: what each member may open in a project, and where they are."""

from django import template
from django.urls import reverse

from labeling.access import role_in_project
from labeling.models import Membership

register = template.Library()

# (section, label, url name, managers only)
TABS = (
    ("annotate", "Annotate", "labeling:annotate", False),
    ("history", "My judgments", "labeling:history", False),
    ("overview", "Overview", "labeling:project_overview", True),
    ("items", "Items", "labeling:manage_items", True),
    ("members", "Members", "labeling:manage_members", True),
    ("import", "Import", "labeling:manage_import", True),
    ("export", "Export", "labeling:manage_export", True),
    ("settings", "Settings", "labeling:manage_settings", True),
)
LABELS = {section: label for section, label, _, _ in TABS}


@register.inclusion_tag("labeling/partials/project_tabs.html", takes_context=True)
def project_tabs(context, project, section: str = ""):
    request = context["request"]
    manager = role_in_project(request.user, project) == Membership.Role.MANAGER
    tabs = [
        {"label": label, "url": reverse(name, args=[project.slug]), "current": key == section}
        for key, label, name, managers_only in TABS
        if manager or not managers_only
    ]
    return {"project": project, "tabs": tabs}


@register.simple_tag
def section_label(section: str) -> str:
    """The name of a project page, for the breadcrumbs."""
    return LABELS.get(section, "")


@register.filter
def response_letter(number: int) -> str:
    """The letter of the `number`th response (1 = A), as annotators and managers name them."""
    return "ABCDEFGH"[int(number) - 1] if 1 <= int(number) <= 8 else str(number)
