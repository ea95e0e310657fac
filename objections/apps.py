from django.apps import AppConfig


class ObjectionsConfig(AppConfig):
    name = "objections"
    verbose_name = "Objections and repair cases"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from objections import checks  # noqa: F401  (registers the system check)

        post_migrate.connect(_sync_workflows, sender=self)


def _sync_workflows(**kwargs: object) -> None:
    """Store the built-in workflow definitions after migrate (and after a test flush)."""
    from objections.services.definitions import workflow_definitions_sync

    workflow_definitions_sync()
