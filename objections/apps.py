from django.apps import AppConfig


class ObjectionsConfig(AppConfig):
    name = "objections"
    verbose_name = "Objections and repair cases"

    def ready(self) -> None:
        from objections import checks  # noqa: F401  (registers the system checks)
        from objections.dashboard import access  # noqa: F401  (the dashboard link at sign-in)
