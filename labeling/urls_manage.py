"""The manager's console (issue #6): project settings, members, imports, exports, items, tokens.

Objects inside a project (members, items, tokens) are named in the POSTed form, not
in the path, and always looked up within the project fetched for the manager.
"""

from django.urls import path

from labeling.views.manage import items, jobs, members, projects, tokens

urlpatterns = [
    path("projects/new/", projects.project_new, name="manage_project_new"),
    path("tokens/", tokens.tokens, name="manage_tokens"),
    path("tokens/revoke/", tokens.revoke, name="manage_token_revoke"),
    path("p/<slug:slug>/settings/", projects.project_settings, name="manage_settings"),
    path("p/<slug:slug>/archive/", projects.archive, name="manage_archive"),
    path("p/<slug:slug>/reopen/", projects.reopen, name="manage_reopen"),
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
