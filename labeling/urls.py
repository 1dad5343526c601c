"""Every page of the app, named in the `labeling` namespace: `{% url 'labeling:annotate' slug %}`.

The annotator's pages, the manager's overview, then the manager's console (issue #6):
project settings, members, imports, exports, items, tokens. Objects inside a project
(members, items, tokens) are named in the POSTed form, not in the path, and always
looked up within the project fetched for the manager. Log-in and log-out stay in
feedback/urls.py, where Django's auth settings (LOGIN_URL ...) name them.
"""

from django.urls import path

from labeling.views import annotate, projects
from labeling.views.manage import items, jobs, members, tokens
from labeling.views.manage import projects as manage_projects

app_name = "labeling"

urlpatterns = [
    path("", projects.home, name="home"),
    path("p/<slug:slug>/", projects.overview, name="project_overview"),
    path("p/<slug:slug>/stats/refresh/", projects.stats_refresh, name="project_stats_refresh"),
    path("p/<slug:slug>/stats/status/", projects.stats_status, name="project_stats_status"),
    path("p/<slug:slug>/annotate/", annotate.annotate, name="annotate"),
    path("p/<slug:slug>/annotate/<str:assignment_id>/judge/", annotate.judge, name="judge"),
    path("p/<slug:slug>/annotate/<str:assignment_id>/skip/", annotate.skip, name="skip"),
    path("p/<slug:slug>/history/", annotate.history, name="history"),
    path("p/<slug:slug>/judgments/<str:judgment_id>/", annotate.revise, name="revise"),
    # The manager's console.
    path("projects/new/", manage_projects.project_new, name="manage_project_new"),
    path("tokens/", tokens.tokens, name="manage_tokens"),
    path("tokens/revoke/", tokens.revoke, name="manage_token_revoke"),
    path("p/<slug:slug>/settings/", manage_projects.project_settings, name="manage_settings"),
    path("p/<slug:slug>/archive/", manage_projects.archive, name="manage_archive"),
    path("p/<slug:slug>/reopen/", manage_projects.reopen, name="manage_reopen"),
    path("p/<slug:slug>/members/", members.members, name="manage_members"),
    path("p/<slug:slug>/members/role/", members.member_role, name="manage_member_role"),
    path("p/<slug:slug>/members/remove/", members.member_remove, name="manage_member_remove"),
    path("p/<slug:slug>/import/", jobs.import_page, name="manage_import"),
    path("p/<slug:slug>/import/start/", jobs.import_start, name="manage_import_start"),
    path("p/<slug:slug>/import/discard/", jobs.import_discard, name="manage_import_discard"),
    path("p/<slug:slug>/export/", jobs.export_page, name="manage_export"),
    path("p/<slug:slug>/jobs/<job_id>/", jobs.job_page, name="manage_job"),
    path("p/<slug:slug>/jobs/<job_id>/download/", jobs.job_download, name="manage_job_download"),
    path("p/<slug:slug>/items/", items.items, name="manage_items"),
    path("p/<slug:slug>/items/gold/", items.item_gold, name="manage_item_gold"),
    path("p/<slug:slug>/items/priority/", items.item_priority, name="manage_item_priority"),
    path("p/<slug:slug>/items/withdraw/", items.item_withdraw_view, name="manage_item_withdraw"),
    path("p/<slug:slug>/items/restore/", items.item_restore_view, name="manage_item_restore"),
]
