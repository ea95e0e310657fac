"""Settings for scs-cases, driven by the environment.

SCS_ENVIRONMENT is "development" (the default: SQLite, an embedded Celery broker, development keys)
or "production" (debug off; SECRET_KEY and the identifier keys must be set).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
ENVIRONMENT = os.environ.get("SCS_ENVIRONMENT", "development")
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured("SCS_ENVIRONMENT must be 'development' or 'production'")
PRODUCTION = ENVIRONMENT == "production"


def _required_in_production(name: str, development_default: str) -> str:
    value = os.environ.get(name, "")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when SCS_ENVIRONMENT=production")
    return development_default


SECRET_KEY = _required_in_production(
    "SECRET_KEY", "development-only-secret-key-never-used-in-production-0123456789"
)
DEBUG = not PRODUCTION and os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost").split(
        ","
    )
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

# Identifiers of credit subjects are encrypted at rest (AES-256-GCM) and found by a keyed hash.
# Both keys are 32 bytes, urlsafe-base64 encoded; generate with `python manage.py generate_keys`.
IDENTIFIER_ENCRYPTION_KEY = _required_in_production(
    "SCS_IDENTIFIER_ENCRYPTION_KEY", "ZGV2ZWxvcG1lbnQtb25seS1lbmNyeXB0aW9uLWtleSE="
)
IDENTIFIER_HASH_KEY = _required_in_production(
    "SCS_IDENTIFIER_HASH_KEY", "ZGV2ZWxvcG1lbnQtb25seS1ibGluZC1pbmRleC1rZXk="
)

# Signed checkpoints of the audit log (audit.checkpoints): the Ed25519 key that signs them (32
# bytes, urlsafe-base64; `manage.py generate_keys`), the file each is appended to outside the
# database, and the auditors' addresses each is mailed to (comma-separated; none: no mail).
AUDIT_SIGNING_KEY = _required_in_production(
    "SCS_AUDIT_SIGNING_KEY", "ZGV2ZWxvcG1lbnQtb25seS1hdWRpdC1zaWduaW5nISE="
)
# The key of the application's seal on each audit event (HMAC-SHA256, audit.services.seal): it
# stays with the application, so an event appended in the database by other means is not sealed.
AUDIT_SEAL_KEY = _required_in_production(
    "SCS_AUDIT_SEAL_KEY", "ZGV2ZWxvcG1lbnQtb25seS1hdWRpdC1zZWFsLWtleSEhIQ=="
)
# Keys that signed earlier checkpoints, after a rotation (audit.checkpoints): comma-separated raw
# Ed25519 public keys in urlsafe base64, as `manage.py audit_public_key` prints them.
AUDIT_RETIRED_PUBLIC_KEYS = [
    key.strip()
    for key in os.environ.get("SCS_AUDIT_RETIRED_PUBLIC_KEYS", "").split(",")
    if key.strip()
]
AUDIT_CHECKPOINT_EMAILS = [
    address.strip()
    for address in os.environ.get("SCS_AUDIT_CHECKPOINT_EMAILS", "").split(",")
    if address.strip()
]

INSTALLED_APPS = [
    # Django's admin, on a site that asks staff for the second factor (scs_cases.admin_site)
    "scs_cases.admin_site.SecondFactorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files: works offline
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "accounts",
    "audit",
    "records",
    "objections",
    "transparency",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "scs_cases.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the staff second factor
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Session time limits (SCS_*_SECONDS below): after the user, django-otp and messages.
    "accounts.middleware.SessionLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.RequestIdMiddleware",
]

if PRODUCTION:
    # gunicorn serves the collected static files itself; runserver serves them in development.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "scs_cases.urls"
WSGI_APPLICATION = "scs_cases.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATA_DIR = Path(os.environ.get("SCS_DATA_DIR", BASE_DIR / "var"))
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'scs_cases.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Several processes (web, worker, beat) share the file in development.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Django's model backend, refusing auditors every add, change and delete permission
    "scs_cases.auth.AuditorsReadOnlyBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},  # ASVS 2.1.1
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:records"
LOGOUT_REDIRECT_URL = "home"

# Staff second factor (django-otp): where otp_required sends a session that has not passed it,
# and the issuer an authenticator app shows beside the account.
OTP_LOGIN_URL = "second_factor"
OTP_TOTP_ISSUER = "scs-cases"
# django-otp's admin pages never show a device's key, its QR code or recovery codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Session limits (accounts.middleware), in seconds: staff idle and from sign-in; citizens idle.
SCS_STAFF_IDLE_SECONDS = int(os.environ.get("SCS_STAFF_IDLE_SECONDS", "1800"))
SCS_STAFF_ABSOLUTE_SECONDS = int(os.environ.get("SCS_STAFF_ABSOLUTE_SECONDS", "43200"))
SCS_CITIZEN_IDLE_SECONDS = int(os.environ.get("SCS_CITIZEN_IDLE_SECONDS", "7200"))

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = DATA_DIR / "private"  # evidence and import files: outside the web root, never served

# Uploads: an import file is read as a stream; cap what one request may send.
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("SCS_IMPORT_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
# Evidence files: each file's cap (enforced while the upload streams) and the files one case holds.
SCS_EVIDENCE_MAX_BYTES = int(os.environ.get("SCS_EVIDENCE_MAX_BYTES", str(20 * 1024 * 1024)))
SCS_EVIDENCE_MAX_FILES = int(os.environ.get("SCS_EVIDENCE_MAX_FILES", "10"))
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an unauthenticated call gets 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        # Staff sessions count once they passed the second factor (tokens are unaffected).
        "accounts.authentication.SecondFactorSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "scs_cases.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scs_cases.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "import": os.environ.get("SCS_IMPORT_THROTTLE", "120/hour"),
        "filing": os.environ.get("SCS_FILING_THROTTLE", "30/hour"),
        # The account API, per client (fairness only: the atomic limits of accounts.throttle
        # are what refuse guessing and mail-bombing).
        "registration": os.environ.get("SCS_REGISTRATION_THROTTLE", "20/hour"),
        "verification": os.environ.get("SCS_VERIFICATION_THROTTLE", "30/hour"),
        "password_reset": os.environ.get("SCS_PASSWORD_RESET_THROTTLE", "20/hour"),
    },
    "DEFAULT_PAGINATION_CLASS": None,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "scs-cases API",
    "DESCRIPTION": "Credit records, objections and corrections.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"RemedyEnum": "objections.models.Case.Remedy"},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The cache holds rate-limit counters (API throttles), so every web process must share it: Redis
# at SCS_CACHE_URL (a database of its own, apart from the broker's); without it, a file-based
# cache in SCS_DATA_DIR, which the processes of one machine share.
CACHE_URL = os.environ.get("SCS_CACHE_URL", "")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "scs",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport (no server needed).
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    # kombu's filesystem transport needs its folders before a worker or producer starts.
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
# Results are not kept, except where a result backend is configured (the routing benchmark
# measures a round trip with it).
CELERY_RESULT_BACKEND = os.environ.get("SCS_CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_RESULT_EXPIRES = 3600
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 900
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "transparency-figures-refresh": {
        "task": "transparency.tasks.figures_refresh_task",
        "schedule": float(os.environ.get("SCS_FIGURES_REFRESH_SECONDS", "3600")),
    },
    "records-publication-sweep": {
        "task": "records.tasks.record_publication_sweep_task",
        "schedule": float(os.environ.get("SCS_PUBLICATION_SWEEP_SECONDS", "3600")),
    },
    "objections-clocks-sweep": {
        "task": "objections.tasks.clocks_sweep_task",
        "schedule": float(os.environ.get("SCS_CLOCK_SWEEP_SECONDS", "300")),
    },
    # Re-drives routing that a lost message left behind (a killed worker, a flushed Redis).
    "objections-unrouted-redrive": {
        "task": "objections.tasks.cases_unrouted_redrive_task",
        "schedule": float(os.environ.get("SCS_REDRIVE_SECONDS", "30")),
    },
    # Gives out cases left unassigned while their agency had no caseworker (objections.services
    # .assignment), should the message sent when one joined be lost.
    "objections-unassigned-sweep": {
        "task": "objections.tasks.cases_unassigned_sweep_task",
        "schedule": float(os.environ.get("SCS_UNASSIGNED_SWEEP_SECONDS", "600")),
    },
    # Sends the notices a lost message or a failed send left in the outbox.
    "objections-notifications-redrive": {
        "task": "objections.tasks.notifications_redrive_task",
        "schedule": float(os.environ.get("SCS_NOTIFICATION_REDRIVE_SECONDS", "60")),
    },
    # Signs a tree head over the audit log when it has grown, and writes it outside the database.
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint_task",
        "schedule": float(os.environ.get("SCS_AUDIT_CHECKPOINT_SECONDS", "3600")),
    },
    # Re-queues audit exports that a lost message or a killed worker left unfinished.
    "audit-exports-redrive": {
        "task": "audit.tasks.audit_exports_redrive_task",
        "schedule": float(os.environ.get("SCS_AUDIT_EXPORT_REDRIVE_SECONDS", "300")),
    },
    # Every day at 03:30: verifies the whole audit log against its signed checkpoints and keeps
    # the result for the auditors' integrity page (audit.integrity).
    "audit-integrity-check": {
        "task": "audit.tasks.audit_integrity_check_daily_task",
        "schedule": crontab(minute="30", hour="3"),
    },
    # Mondays at 09:00: tells administrators when next year's working-day schedule is missing.
    "objections-calendar-reminder": {
        "task": "objections.tasks.calendar_reminder_task",
        "schedule": crontab(minute="0", hour="9", day_of_week="mon"),
    },
}

AUDIT_CHECKPOINT_FILE = os.environ.get(
    "SCS_AUDIT_CHECKPOINT_FILE", str(DATA_DIR / "audit-checkpoints.jsonl")
)

# Where django.core.mail.backends.filebased.EmailBackend writes, when that backend is chosen.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = os.environ.get("SECURE_SSL_REDIRECT", "1") == "1"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
# The address the site is reached at, for links in e-mails sent by workers (no request to ask).
SCS_SITE_URL = os.environ.get("SCS_SITE_URL", "" if PRODUCTION else "http://127.0.0.1:8000")
# Scripts only from our own static files (no inline script, no eval); styles may be inline
# attributes; nothing may frame the pages. Empty: no header (scs_cases.security).
SCS_CONTENT_SECURITY_POLICY = os.environ.get(
    "SCS_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
X_FRAME_OPTIONS = "DENY"
