"""The Django admin for superusers: every model, searchable, judgments read-only."""

from django.contrib import admin

from labeling.models import ApiToken, Assignment, Item, Judgment, JudgmentRevision, Membership, Project, Response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "mode", "overlap", "min_votes", "max_votes", "created_at", "archived_at"]
    search_fields = ["slug", "title"]
    list_filter = ["mode", "order"]
    inlines = [MembershipInline]


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "votes", "target", "is_complete", "is_gold", "priority"]
    list_filter = ["project", "is_complete", "is_gold"]
    search_fields = ["external_id"]
    readonly_fields = ["votes", "filled"]
    inlines = [ResponseInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "annotator", "state", "queued", "expires_at"]
    list_filter = ["project", "state"]
    search_fields = ["annotator__username", "item__external_id"]
    raw_id_fields = ["item"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Human work is never edited behind the annotator's back."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "item", "annotator", "strength", "both_bad", "late", "revision", "created_at"]
    list_filter = ["project", "both_bad", "late"]
    search_fields = ["annotator__username", "item__external_id", "rationale"]


@admin.register(JudgmentRevision)
class JudgmentRevisionAdmin(ReadOnlyAdmin):
    list_display = ["judgment", "revision", "made_at"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["project", "role"]
    search_fields = ["user__username"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["user__username", "name"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
