from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person or an agency system. Roles are groups; `agency` says where staff work."""

    agency = models.ForeignKey(
        "records.Agency",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("agency"),
        help_text=_("The agency a caseworker, supervisor or agency system belongs to."),
    )
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, default="zh-hans", blank=True
    )
