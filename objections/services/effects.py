"""The effects of a step on the credit record, through the record services (each audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accounts.models import User
from objections import workflow
from objections.models import Case
from objections.selectors import decision_in_force
from records import services as record_services
from records.models import CreditRecord

if TYPE_CHECKING:
    pass


# Effects on the record, by kind. notify_* and escalate travel with the notification that is
# queued after the transition.
MARK_EFFECTS = {"mark_record": True, "unmark_record": False}
STATUS_EFFECTS = {
    "delete_record": CreditRecord.Status.DELETED,
    "end_publication": CreditRecord.Status.PUBLICATION_ENDED,
}


def effects_run(case: Case, step: workflow.Transition, *, actor: User | None) -> None:
    record_id, reference = case.record_id, case.reference
    for effect in step.effects:
        if effect in MARK_EFFECTS:
            record_services.record_mark(
                record_id=record_id,
                under_objection=MARK_EFFECTS[effect],
                actor=actor,
                case_reference=reference,
            )
        elif effect in STATUS_EFFECTS:
            record_services.record_status_set(
                record_id=record_id,
                status=STATUS_EFFECTS[effect],
                actor=actor,
                case_reference=reference,
            )
        elif effect == "apply_correction":
            decision = decision_in_force(case)
            if decision is not None and decision.remedy == Case.Remedy.CORRECT:
                record_services.record_correct(
                    record_id=record_id,
                    changes=decision.correction,
                    actor=actor,
                    case_reference=reference,
                )
        elif effect == "annotate_repaired":
            record_services.record_annotate_repaired(
                record_id=record_id, actor=actor, case_reference=reference
            )
