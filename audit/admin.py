from django.contrib import admin

from audit.models import AuditEvent
from scs_cases.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The log is written only by audit_record; the database refuses any change to it."""

    list_display = ("sequence", "recorded_at", "action", "actor_role", "target_type", "target_id")
    list_filter = ("action", "actor_role")
    search_fields = ("case_reference", "target_id", "request_id")
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
