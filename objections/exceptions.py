"""Domain errors of the case workflow, mapped to HTTP answers by scs_cases.api."""

from scs_cases.errors import Conflict, DomainError, NotPermitted


class CaseConflict(Conflict):
    code = "case_conflict"


class TransitionNotAvailable(Conflict):
    """The transition is not open from the case's current state (it may have just changed)."""

    code = "transition_not_available"


class RoleNotAllowed(NotPermitted):
    code = "role_not_allowed"


class FilingRefused(DomainError):
    code = "filing_refused"


class MissingFields(DomainError):
    code = "missing_fields"


class ExtensionRefused(DomainError):
    code = "extension_refused"


class AssigneeNotAllowed(DomainError):
    """Not an active caseworker or supervisor of the agency responsible for the case."""

    code = "assignee_not_allowed"
