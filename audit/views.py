"""The public key that signs the audit log's checkpoints, at a fixed address."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from audit.checkpoints import key_id, public_key, public_key_pem


@require_GET
def public_key_view(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(public_key_pem(), content_type="application/x-pem-file")
    response["X-Key-Id"] = key_id(public_key())
    response["Cache-Control"] = "public, max-age=3600"
    return response
