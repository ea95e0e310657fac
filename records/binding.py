"""Proving who you are: binding an account to a credit subject.

A person gives their name and resident ID number; a one-time code goes to the contact the
platform holds for that subject (`SubjectContact`). A company's representative gives the
company's name and unified social credit code and uploads an authorisation letter, which a
caseworker of a credit centre checks in the dashboard's identity-check queue. A verified binding
is a guardian grant on the subject made by `subject_access_grant`; revoking it removes the grant,
and the portal reads grants on every request.

The answer to a request never says whether the details matched a subject: a binding row is kept
either way (`subject` NULL when nothing matched), a code is drawn either way, and only a matched
subject's contact receives it. Requests are limited per account, per network address and per
identifier, wrong codes per binding, all counted with the cache's atomic increment. Identifiers
and contact addresses never go into audit payloads, logs or messages.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import override

from audit.reads import IDENTITY_LETTER_OPENED, read_record
from audit.services import audit_record, audited
from records import identifiers
from records.binding_selectors import (
    binding_get_for_user,
    code_expired,
    identity_check_get,
    identity_checker,
)
from records.crypto import identifier_decrypt, identifier_encrypt, identifier_hash
from records.models import Subject, SubjectBinding, SubjectContact
from records.services import subject_access_grant, subject_access_revoke
from scs_cases.errors import Conflict, DomainError, NotPermitted

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from accounts.models import User

CODE_DIGITS: Final = 6
CODE_LIFETIME: Final = timedelta(minutes=15)
CODE_ATTEMPTS: Final = 5
THROTTLE_WINDOW_SECONDS: Final = 3600
# Requests per window: per account, per network address, per identifier (the last keeps a
# subject's contact from being flooded with codes by many accounts).
REQUESTS_PER_USER: Final = 5
REQUESTS_PER_ADDRESS: Final = 20
REQUESTS_PER_IDENTIFIER: Final = 5
REASON_LIMIT: Final = 2000

logger = logging.getLogger(__name__)

Status = SubjectBinding.Status
Method = SubjectBinding.Method


class BindingInvalid(DomainError):
    """A request that cannot be taken as it is (a malformed identifier, a missing letter);
    `field` names the form field at fault."""

    code = "binding_invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class BindingThrottled(DomainError):
    http_status = 429
    code = "throttled"


class BindingCodeWrong(DomainError):
    code = "code_wrong"


class BindingCodeExpired(DomainError):
    code = "code_expired"


class BindingNotPending(Conflict):
    code = "binding_not_pending"


def sent_message() -> str:
    """The one answer to every accepted request, matched or not."""
    return _(
        "If the details match a record we hold, we have sent a code to the contact we hold for "
        "it. The code is valid for 15 minutes."
    )


def queued_message() -> str:
    return _(
        "Your request and authorisation letter are waiting for a caseworker's check. You will "
        "see the outcome on this page."
    )


# --- contacts -------------------------------------------------------------------------------


def mask_email(email: str) -> str:
    local, _at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def subject_contact_set(*, subject: Subject, email: str) -> SubjectContact:
    """Record the contact the platform holds for `subject` (demo data, imports)."""
    email = email.strip()
    contact, _created = SubjectContact.objects.update_or_create(
        subject=subject,
        defaults={"email_encrypted": identifier_encrypt(email), "email_masked": mask_email(email)},
    )
    return contact


def _contact_email(subject: Subject) -> str | None:
    contact = SubjectContact.objects.filter(subject=subject).first()
    return identifier_decrypt(contact.email_encrypted) if contact is not None else None


# --- throttles ------------------------------------------------------------------------------


def _window_key(kind: str, value: str | int, at: float) -> str:
    # Fixed windows by the application's clock: a count needs no read-modify-write.
    return f"records:binding:{kind}:{value}:{int(at // THROTTLE_WINDOW_SECONDS)}"


def _count(key: str) -> int:
    cache.add(key, 0, timeout=THROTTLE_WINDOW_SECONDS)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=THROTTLE_WINDOW_SECONDS)
        return 1


def _address_key(address: str) -> str:
    # Addresses are kept out of cache keys in clear, as identifiers are.
    return hashlib.sha256(address.encode()).hexdigest()[:32]


@audited()
def _throttled(*, user: User, limit: str) -> None:
    audit_record(actor=user, action="subject.binding_throttled", target=user, data={"limit": limit})


def _throttle(*, user: User, address: str, identifier_key: str) -> None:
    now = timezone.now().timestamp()
    limits = (
        ("user", _window_key("user", user.pk, now), REQUESTS_PER_USER),
        ("address", _window_key("address", _address_key(address), now), REQUESTS_PER_ADDRESS),
        (
            "identifier",
            _window_key("identifier", identifier_key[:32], now),
            REQUESTS_PER_IDENTIFIER,
        ),
    )
    for name, key, limit in limits:
        if _count(key) > limit:
            _throttled(user=user, limit=name)
            raise BindingThrottled(
                _("Too many requests to prove who you are. Try again in an hour.")
            )


# --- codes ----------------------------------------------------------------------------------


def _code_hash(binding_public_id: uuid.UUID, code: str) -> str:
    """Keyed with the site's secret and bound to the binding: a stolen table does not reveal
    codes by a million guesses."""
    return salted_hmac("records.binding.code", f"{binding_public_id}:{code}").hexdigest()


def _code_new() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _code_sender(*, binding_id: int, email: str, code: str, username: str) -> Callable[[], None]:
    """The mail, sent once the binding is committed. A closure, not a `partial`: whatever is
    logged about it names neither the address nor the code."""

    def send() -> None:
        context = {"code": code, "username": username, "minutes": 15}
        with override(settings.LANGUAGE_CODE):
            subject = render_to_string("email/binding_code_subject.txt", context).strip()
            body = render_to_string("email/binding_code_body.txt", context)
        try:
            send_mail(subject, body, None, [email])
        except Exception:
            # The answer to the request is the same whether the mail went or not. SMTP errors
            # carry the recipient: only the binding is named.
            logger.warning("the code of binding %s could not be mailed", binding_id)

    return send


# --- the authorisation letter ---------------------------------------------------------------


@dataclass(frozen=True)
class _Letter:
    staged: Any  # objections.evidence.storage.Staged


def _letter_stage(letter: UploadedFile) -> _Letter:
    """Check and stage the letter as evidence files are checked and stored.

    The checks (content sniffing, hostile files refused, images re-encoded) and the storage
    live with the evidence files in the objections app, which depends on this one; they are
    imported here, lazily, rather than copied.
    """
    from objections.evidence.checks import EvidenceRefused, content_check, name_check
    from objections.evidence.storage import stage

    try:
        name = name_check(letter.name or "letter")
        if letter.size is not None and letter.size > settings.SCS_EVIDENCE_MAX_BYTES:
            raise BindingInvalid(
                _("The authorisation letter may be at most %(size)s MB.")
                % {"size": f"{settings.SCS_EVIDENCE_MAX_BYTES / (1024 * 1024):g}"},
                field="letter",
            )
        letter.seek(0)
        checked = content_check(letter.read(), name=name)
    except EvidenceRefused as error:
        raise BindingInvalid(error.message, field="letter") from error
    return _Letter(staged=stage(checked))


def letter_open(binding: SubjectBinding) -> Any:
    from objections.evidence.storage import stored_open

    return stored_open(binding.letter_stored_name)


# --- writes ---------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _identifier_checked(kind: str, raw: str) -> str:
    if kind not in (identifiers.PERSON, identifiers.ORGANISATION):
        raise BindingInvalid(_("Choose a person or a company."), field="kind")
    try:
        return identifiers.validate_identifier(kind, raw)
    except identifiers.InvalidIdentifier as error:
        label = (
            _("The resident ID number")
            if kind == identifiers.PERSON
            else _("The unified social credit code")
        )
        # The reason names the fault, never the value.
        raise BindingInvalid(
            _("%(label)s is not valid: %(reason)s.") % {"label": label, "reason": _(error.reason)},
            field="identifier",
        ) from error


def binding_request(
    *,
    user: User,
    kind: str,
    name: str,
    identifier: str,
    letter: UploadedFile | None = None,
    address: str = "",
) -> SubjectBinding:
    """Ask to act for the subject with these details.

    A person gets a one-time code at the subject's contact (if the details match a subject that
    has one); a company's request, with its authorisation letter, waits for a caseworker. The
    caller answers `sent_message()` or `queued_message()` whatever matched. Raises
    `BindingInvalid` (nothing changed) or `BindingThrottled`.
    """
    name = " ".join(name.split())
    if not name:
        raise BindingInvalid(_("Enter the name."), field="name")
    if len(name) > 200:
        raise BindingInvalid(_("The name may be at most 200 characters."), field="name")
    value = _identifier_checked(kind, identifier)
    if kind == identifiers.ORGANISATION and letter is None:
        raise BindingInvalid(
            _("Attach the company's authorisation letter (PDF, JPEG or PNG)."), field="letter"
        )
    hashed = identifier_hash(kind, value)
    _throttle(user=user, address=address, identifier_key=hashed)
    staged = _letter_stage(letter) if kind == identifiers.ORGANISATION and letter else None
    try:
        return _binding_create(
            user=user, kind=kind, name=name, value=value, hashed=hashed, letter=staged
        )
    except BaseException:
        if staged is not None:
            from objections.evidence.storage import discard

            discard([staged.staged])
        raise


@audited()
def _binding_create(
    *, user: User, kind: str, name: str, value: str, hashed: str, letter: _Letter | None
) -> SubjectBinding:
    subject = Subject.objects.filter(identifier_hash=hashed, kind=kind).first()
    if subject is not None and _name_key(subject.name) != _name_key(name):
        subject = None
    # A new request replaces the user's pending one for the same identifier.
    SubjectBinding.objects.filter(user=user, identifier_hash=hashed, status=Status.PENDING).update(
        status=Status.EXPIRED, updated_at=timezone.now()
    )
    binding = SubjectBinding(
        user=user,
        subject=subject,
        kind=kind,
        claimed_name=name,
        identifier_hash=hashed,
        identifier_masked=identifiers.mask_identifier(value),
        method=Method.DOCUMENTS if letter is not None else Method.ONE_TIME_CODE,
    )
    code = ""
    if letter is None:
        code = _code_new()
        binding.code_hash = _code_hash(binding.public_id, code)
        binding.code_expires_at = timezone.now() + CODE_LIFETIME
    else:
        staged = letter.staged
        binding.letter_stored_name = staged.stored_name
        binding.letter_name = staged.name
        binding.letter_content_type = staged.content_type
        binding.letter_size = staged.size
        binding.letter_sha256 = staged.sha256
    binding.save()
    if letter is not None:
        from objections.evidence.storage import place

        place(letter.staged)
    audit_record(
        actor=user,
        action="subject.binding_requested",
        target=binding,
        data={
            "kind": kind,
            "method": binding.method,
            "subject": subject.pk if subject is not None else None,
        },
    )
    if code and subject is not None:
        email = _contact_email(subject)
        if email:
            transaction.on_commit(
                _code_sender(
                    binding_id=binding.pk, email=email, code=code, username=user.get_username()
                )
            )
    return binding


@dataclass(frozen=True)
class _Outcome:
    binding: SubjectBinding
    error: DomainError | None = None


def binding_confirm_code(*, user: User, public_id: uuid.UUID | str, code: str) -> SubjectBinding:
    """Check the code of the user's pending binding: the grant when it is right, otherwise one
    attempt spent (five, and the binding is locked). Raises on a wrong, expired or locked code;
    the attempt is recorded all the same."""
    outcome = _code_check(user=user, public_id=public_id, code=code.strip())
    if outcome.error is not None:
        raise outcome.error
    return outcome.binding


def _locked() -> BindingThrottled:
    return BindingThrottled(
        _("Too many wrong codes: this request is locked. Start again to get a new code.")
    )


@audited()
def _code_check(*, user: User, public_id: uuid.UUID | str, code: str) -> _Outcome:
    found = binding_get_for_user(user=user, public_id=public_id)
    binding = SubjectBinding.objects.select_for_update().get(pk=found.pk)
    if binding.method != Method.ONE_TIME_CODE:
        return _Outcome(binding, BindingNotPending(_("This request does not use a code.")))
    if binding.code_attempts >= CODE_ATTEMPTS:
        return _Outcome(binding, _locked())
    if binding.status != Status.PENDING:
        return _Outcome(binding, BindingNotPending(_("This request is no longer waiting.")))
    if code_expired(binding):
        binding.status = Status.EXPIRED
        binding.code_hash = ""
        binding.save(update_fields=["status", "code_hash", "updated_at"])
        audit_record(
            actor=user,
            action="subject.binding_expired",
            target=binding,
            data={"binding": binding.pk},
        )
        return _Outcome(
            binding, BindingCodeExpired(_("The code has expired. Start again to get a new one."))
        )
    right = binding.subject is not None and constant_time_compare(
        binding.code_hash, _code_hash(binding.public_id, code)
    )
    if not right:
        binding.code_attempts += 1
        fields = ["code_attempts", "updated_at"]
        if binding.code_attempts >= CODE_ATTEMPTS:
            binding.status = Status.EXPIRED
            binding.code_hash = ""
            fields += ["status", "code_hash"]
        binding.save(update_fields=fields)
        audit_record(
            actor=user,
            action="subject.binding_code_failed",
            target=binding,
            data={"binding": binding.pk, "attempts": binding.code_attempts},
        )
        if binding.code_attempts >= CODE_ATTEMPTS:
            return _Outcome(binding, _locked())
        left = CODE_ATTEMPTS - binding.code_attempts
        return _Outcome(
            binding,
            BindingCodeWrong(
                _("That code is not right. %(left)d attempt(s) left.") % {"left": left},
                field="code",
            ),
        )
    _verified(binding, actor=user)
    return _Outcome(binding)


def _verified(binding: SubjectBinding, *, actor: User) -> None:
    if binding.subject is None:  # the callers check; a grant needs a subject
        raise Conflict("no subject to grant")
    binding.status = Status.VERIFIED
    binding.code_hash = ""
    binding.decided_by = actor
    binding.decided_at = timezone.now()
    binding.save(update_fields=["status", "code_hash", "decided_by", "decided_at", "updated_at"])
    subject_access_grant(subject=binding.subject, user=binding.user, actor=actor)
    audit_record(
        actor=actor,
        action="subject.binding_verified",
        target=binding,
        data={"binding": binding.pk, "subject": binding.subject_id, "user": binding.user_id},
    )


@audited()
def binding_decide(
    *, public_id: uuid.UUID | str, actor: User, approve: bool, reason: str = ""
) -> SubjectBinding:
    """A caseworker's decision on a document check: approve (the grant) or refuse with a
    reason the user sees."""
    found = identity_check_get(user=actor, public_id=public_id)
    binding = SubjectBinding.objects.select_for_update().get(pk=found.pk)
    if binding.status != Status.PENDING:
        raise BindingNotPending(_("This check has already been decided."))
    reason = reason.strip()[:REASON_LIMIT]
    if approve:
        if binding.subject is None:
            raise Conflict(
                _(
                    "No subject we hold matches this name and identifier: refuse the request "
                    "and say why."
                )
            )
        if binding.user_id == actor.pk:
            raise NotPermitted(_("You cannot decide your own request."))
        binding.reason = reason
        binding.save(update_fields=["reason", "updated_at"])
        _verified(binding, actor=actor)
        return binding
    if not reason:
        raise BindingInvalid(_("Give the reason for the refusal."), field="reason")
    binding.status = Status.REFUSED
    binding.reason = reason
    binding.decided_by = actor
    binding.decided_at = timezone.now()
    binding.save(update_fields=["status", "reason", "decided_by", "decided_at", "updated_at"])
    audit_record(
        actor=actor,
        action="subject.binding_refused",
        target=binding,
        data={"binding": binding.pk, "subject": binding.subject_id, "user": binding.user_id},
    )
    return binding


@audited()
def binding_revoke(*, public_id: uuid.UUID | str, actor: User) -> SubjectBinding:
    """End a verified binding: the user's own, or any, for those who check identities. The
    grant goes with it; the next request no longer shows the subject."""
    if identity_checker(actor):
        found = SubjectBinding.objects.filter(public_id=public_id).first()
        if found is None:
            raise Http404("No such binding.")
    else:
        found = binding_get_for_user(user=actor, public_id=public_id)
    binding = SubjectBinding.objects.select_for_update().select_related("user").get(pk=found.pk)
    if binding.status != Status.VERIFIED or binding.subject is None:
        raise BindingNotPending(_("Only a verified link can be ended."))
    subject = binding.subject
    # Every verified binding of this user to this subject rests on the one grant.
    SubjectBinding.objects.filter(
        user_id=binding.user_id, subject=subject, status=Status.VERIFIED
    ).update(status=Status.REVOKED, updated_at=timezone.now())
    binding.refresh_from_db()
    subject_access_revoke(subject=subject, user=binding.user, actor=actor)
    audit_record(
        actor=actor,
        action="subject.binding_revoked",
        target=binding,
        data={"binding": binding.pk, "subject": subject.pk, "user": binding.user_id},
    )
    return binding


def binding_letter_read_record(*, actor: User, binding: SubjectBinding) -> None:
    """A caseworker opened a representative's authorisation letter (a read of personal data)."""
    ids = {"binding": binding.pk, "user": binding.user_id}
    if binding.subject_id is not None:
        ids["subject"] = binding.subject_id
    read_record(actor=actor, what=IDENTITY_LETTER_OPENED, target=binding, ids=ids)
