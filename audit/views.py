"""The public keys that verify the audit log's checkpoints, at fixed addresses."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from audit.checkpoints import key_id, known_public_keys, public_key, public_key_pem, public_keys_pem


def _pem_response(text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="application/x-pem-file")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
def public_key_view(request: HttpRequest) -> HttpResponse:
    """The key that signs checkpoints now; its ID in X-Key-Id."""
    response = _pem_response(public_key_pem())
    response["X-Key-Id"] = key_id(public_key())
    return response


@require_GET
def public_keys_view(request: HttpRequest) -> HttpResponse:
    """Every key whose checkpoints verify (the signing one first, then the retired ones); their
    IDs, in the same order, in X-Key-Ids."""
    response = _pem_response(public_keys_pem())
    response["X-Key-Ids"] = ",".join(known_public_keys())
    return response
