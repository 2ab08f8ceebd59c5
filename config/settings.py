"""Settings for the points platform, read from 12-factor environment variables.

Defaults run the demo with no servers at all: an embedded SQLite file and a celery broker
on the local filesystem. Production and the test suite set DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (Redis).
"""

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-demo-key-change-me-in-production")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h.strip()]

INSTALLED_APPS = [
    # The admin with the console's sign-in rules (two factors for the roles that move points).
    "config.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # whitenoise's runserver_nostatic before staticfiles: `runserver` serves static files as
    # deployed (through the middleware), not through Django's development view.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "django_prometheus",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "import_export",
    "pgtrigger",
    "simple_history",
    "members",
    "points",
    "tiers",
    "riskcontrol",
    "mall",
    "settlement",
]

MIDDLEWARE = [
    # Request counts and latency by view and status (django-prometheus), measured around all the rest.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the application itself (whitenoise): no reverse proxy needed.
    "config.middleware.StaticFilesMiddleware",
    # One JSON log line per request, and its Request-Id on every answer.
    "config.middleware.RequestLogMiddleware",
    # A database outage answers 503 with Retry-After, not a 500 page (config.middleware).
    "config.middleware.DatabaseUnavailableMiddleware",
    "config.middleware.BrowserSessionMiddleware",
    "config.middleware.ApiLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.BrowserAuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "config.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # The request's device and client address for the risk gates, and the record of what they
    # refused, written after the refused transaction rolled back (riskcontrol.middleware).
    "riskcontrol.middleware.RiskRequestMiddleware",
    # Console sign-in lockout after repeated failures (django-axes), last as it asks.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    database = dj_database_url.parse(
        url,
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        # A persistent connection is checked before a request reuses it: after a database
        # restart the dead one is replaced instead of failing the request.
        conn_health_checks=True,
    )
    if database["ENGINE"] == "django.db.backends.postgresql":
        if env_bool("DATABASE_PREPARED_STATEMENTS", True):
            # Server-side binding lets psycopg prepare a statement a connection runs again and
            # again (after 5 runs): PostgreSQL then skips parsing and planning, which on the hot
            # paths costs more than executing. Turn off behind a pooler that cannot keep them.
            database["OPTIONS"] = {"server_side_binding": True}
        # Django's backend, its health check run only when the quiet connection's socket has
        # input (a restart, a terminated backend): no SELECT 1 round trip per request.
        database["ENGINE"] = "config.postgresql"
    return database


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"))}
# A read replica (e.g. a streaming standby) for statements, dashboards and exports (config.routers).
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = {**database_from_url(os.environ["DATABASE_REPLICA_URL"]), "TEST": {"MIRROR": "default"}}
    DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the web server, a worker and beat on one SQLite file: WAL lets readers run
    # beside the writer, IMMEDIATE transactions queue writers instead of failing on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Console sign-in: django-axes counts failures and locks out (the backend first, as it asks).
AUTHENTICATION_BACKENDS = [
    "config.console.ConsoleAxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "1"))  # hours
# A username from one address: a brute force on one account is stopped without locking its
# owner out everywhere. Behind a proxy set AXES_IPWARE_META_PRECEDENCE_ORDER (see docs/deploy.md).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)
# Two-factor sign-in (django-otp, TOTP) is required of the staff in these groups (comma-separated,
# empty: of none); anyone else who set up a device is asked for it too.
CONSOLE_OTP_REQUIRED_GROUPS = [
    g.strip() for g in os.environ.get("CONSOLE_OTP_REQUIRED_GROUPS", "operations,finance,risk review").split(",")
    if g.strip()
]
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Points platform")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# Served by whitenoise (the middleware). The demo and the tests find the files in the apps;
# production (config.settings_production) serves what `collectstatic` compressed and hashed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# One process's memory by default; production sets CACHE_URL (e.g. redis://host:6379/1) so that
# every process shares throttle counts and sees an earning-rule change at once.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CACHE_URL"]}
        if os.environ.get("CACHE_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "members.authentication.PartnerKeyAuthentication",
        "members.authentication.MemberTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, both ways (config.api.headers): a generated client sends and reads nothing else.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["config.api.headers.ApiJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.api.headers.JsonContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.StandardPagination",
    "EXCEPTION_HANDLER": "config.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # pay_code: per member (members.throttles); an app refreshes its code about once a minute.
    "DEFAULT_THROTTLE_RATES": {"otp": "10/min", "token": "20/min", "pay_code": os.environ.get("PAY_CODE_RATE", "12/min")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Points platform API",
    "DESCRIPTION": (
        "One points balance across every business of the group. Partners (POS, apps, parking) "
        "authenticate with `Authorization: Api-Key <key>`; members with `Authorization: Bearer <token>`. "
        "Writes that move points require an `Idempotency-Key` header. Errors are JSON "
        '`{"code": "...", "detail": "..."}` with a stable machine code.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # After the enum hook: the headers, 415 and 5XX answers every operation shares (config.api.openapi).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.openapi.postprocess_contract",
    ],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "mall.models.OrderStatus",
        "CouponStatusEnum": "mall.models.CouponStatus",
        "ItemKindEnum": "mall.models.ItemKind",
        "KindEnum": "points.models.PostingKind",  # the name it had before items had kinds too
        "CodeSourceEnum": "mall.models.CodeSource",
    },
}

# Celery: the demo runs on a filesystem broker that needs no server; production sets Redis.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "broker" / "out"),
        "data_folder_out": str(VAR_DIR / "broker" / "out"),
        "processed_folder": str(VAR_DIR / "broker" / "processed"),
        "control_folder": str(VAR_DIR / "broker" / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Deployments (or test runs) sharing one broker keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Points programme defaults.
POINTS_EXPIRY_BATCH_SIZE = int(os.environ.get("POINTS_EXPIRY_BATCH_SIZE", "500"))
POINTS_EXPIRY_MAX_REQUEUES = int(os.environ.get("POINTS_EXPIRY_MAX_REQUEUES", "1000"))
# Chains of batches one expiry run splits into, over disjoint ranges of wallets (PostgreSQL only).
POINTS_EXPIRY_PARTITIONS = int(os.environ.get("POINTS_EXPIRY_PARTITIONS", "2"))
# The largest single amount (CNY) an earn accepts: a typo of a few zeros is refused, not credited.
POINTS_MAX_AMOUNT_CNY = Decimal(os.environ.get("POINTS_MAX_AMOUNT_CNY", "1000000.00"))
# Points given back (a cancel, a payment's refund) after their lot expired come back as a new
# lot valid this many days.
POINTS_REGRANT_DAYS = int(os.environ.get("POINTS_REGRANT_DAYS", "30"))
# A ledger partitioned by month (docs/scaling.md, `manage.py partition_ledger`): how many months
# beyond this one always have their partition; the memory each index or key check of the
# conversion may use.
POINTS_PARTITION_MONTHS_AHEAD = int(os.environ.get("POINTS_PARTITION_MONTHS_AHEAD", "3"))
POINTS_PARTITION_MAINTENANCE_WORK_MEM = os.environ.get("POINTS_PARTITION_MAINTENANCE_WORK_MEM", "256MB")
# The dashboard's daily aggregates (docs/dashboard.md): how far before its watermark the job looks
# again for postings booked in transactions still open at its last run; which posting kinds make
# a member active.
DASHBOARD_AGGREGATES_LAG_SECONDS = int(os.environ.get("DASHBOARD_AGGREGATES_LAG_SECONDS", str(15 * 60)))
DASHBOARD_ACTIVE_MEMBER_KINDS = [
    kind.strip() for kind in os.environ.get("DASHBOARD_ACTIVE_MEMBER_KINDS", "earn,spend").split(",") if kind.strip()
]
# Holds: how long one lives when the caller does not say, and the longest a caller may ask for.
POINTS_HOLD_DEFAULT_SECONDS = int(os.environ.get("POINTS_HOLD_DEFAULT_SECONDS", str(15 * 60)))
POINTS_HOLD_MAX_SECONDS = int(os.environ.get("POINTS_HOLD_MAX_SECONDS", str(7 * 24 * 3600)))
# Member-to-member transfers (POST /api/v1/me/transfers/): off unless the group offers them, and
# how many points one member may transfer per day of the group's calendar.
POINTS_MEMBER_TRANSFERS_ENABLED = os.environ.get("POINTS_MEMBER_TRANSFERS_ENABLED", "false").lower() in ("1", "true", "yes")
POINTS_MEMBER_TRANSFER_DAILY_LIMIT = int(os.environ.get("POINTS_MEMBER_TRANSFER_DAILY_LIMIT", "5000"))
# The mall: the most units in one order; how long a merchant may undo a write-off; how early a
# booking's check-in opens before its slot; the coupon expiry job's batch and re-queue bounds.
MALL_MAX_QUANTITY = int(os.environ.get("MALL_MAX_QUANTITY", "20"))
MALL_WRITE_OFF_UNDO_SECONDS = int(os.environ.get("MALL_WRITE_OFF_UNDO_SECONDS", str(15 * 60)))
MALL_CHECK_IN_EARLY_MINUTES = int(os.environ.get("MALL_CHECK_IN_EARLY_MINUTES", "30"))
MALL_EXPIRY_BATCH_SIZE = int(os.environ.get("MALL_EXPIRY_BATCH_SIZE", "200"))
MALL_EXPIRY_MAX_REQUEUES = int(os.environ.get("MALL_EXPIRY_MAX_REQUEUES", "1000"))
# Partner keys: requests per minute a key may send (its own limit, else this; 0: no limit),
# counted in Redis at RATE_LIMIT_REDIS_URL (default CACHE_URL when that is Redis) so every process
# shares the count; how often a key's last use is written (seconds).
PARTNER_RATE_LIMIT_PER_MINUTE = int(os.environ.get("PARTNER_RATE_LIMIT_PER_MINUTE", "0"))
RATE_LIMIT_REDIS_URL = os.environ.get(
    "RATE_LIMIT_REDIS_URL",
    os.environ.get("CACHE_URL", "") if os.environ.get("CACHE_URL", "").startswith(("redis://", "rediss://")) else "",
)
RATE_LIMIT_REDIS_TIMEOUT = float(os.environ.get("RATE_LIMIT_REDIS_TIMEOUT", "0.2"))
PARTNER_KEY_LAST_USED_SECONDS = int(os.environ.get("PARTNER_KEY_LAST_USED_SECONDS", "60"))
# Partner keys, merchants, earning rules and tiers are cached (config.cache); a change replaces the
# cache version at once. With a cache not shared between processes (the default local-memory
# one) other processes see it after this long.
CONFIG_CACHE_SECONDS = int(os.environ.get("CONFIG_CACHE_SECONDS", "60"))

# Risk control: behind a proxy, the META header holding the client address (e.g.
# HTTP_X_FORWARDED_FOR; its first address is taken); empty: REMOTE_ADDR. Adjustment requests
# awaiting a second operator expire after this many days.
RISK_CLIENT_ADDRESS_HEADER = os.environ.get("RISK_CLIENT_ADDRESS_HEADER", "")
RISK_ADJUSTMENT_REQUEST_DAYS = int(os.environ.get("RISK_ADJUSTMENT_REQUEST_DAYS", "3"))

# Member sign-in: one-time codes sent through a pluggable SMS backend.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "members.sms.ConsoleSmsBackend")
SMS_FILE_PATH = os.environ.get("SMS_FILE_PATH", str(VAR_DIR / "sms.log"))
OTP_TTL_SECONDS = int(os.environ.get("OTP_TTL_SECONDS", "300"))
OTP_MAX_PER_PHONE_PER_HOUR = int(os.environ.get("OTP_MAX_PER_PHONE_PER_HOUR", "5"))
OTP_MAX_ATTEMPTS = int(os.environ.get("OTP_MAX_ATTEMPTS", "5"))
MEMBER_TOKEN_TTL_SECONDS = int(os.environ.get("MEMBER_TOKEN_TTL_SECONDS", str(30 * 24 * 3600)))

# E-mail (statements, reminders): the demo writes each message to a file under var/mail;
# production sets EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and the EMAIL_* below.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "points@example.com")

# Statements and notifications (docs/statements.md).
STATEMENTS_BATCH_SIZE = int(os.environ.get("STATEMENTS_BATCH_SIZE", "2000"))
# Bulk member imports (points.imports): rows written per transaction, chunks per task call.
MEMBER_IMPORT_CHUNK_SIZE = int(os.environ.get("MEMBER_IMPORT_CHUNK_SIZE", "2000"))
MEMBER_IMPORT_TASK_CHUNKS = int(os.environ.get("MEMBER_IMPORT_TASK_CHUNKS", "25"))
# Where a message's link points: the member app's statement page is <base>/statements/<period>.
NOTIFICATIONS_LINK_BASE_URL = os.environ.get("NOTIFICATIONS_LINK_BASE_URL", "http://127.0.0.1:8000")
# No SMS between these times of the group's day ("" for none): they wait for the end.
NOTIFICATIONS_SMS_QUIET_HOURS = os.environ.get("NOTIFICATIONS_SMS_QUIET_HOURS", "21:00-08:00")
NOTIFICATIONS_MAX_RETRIES = int(os.environ.get("NOTIFICATIONS_MAX_RETRIES", "5"))
NOTIFICATIONS_RETRY_BACKOFF_SECONDS = int(os.environ.get("NOTIFICATIONS_RETRY_BACKOFF_SECONDS", "60"))
NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS = int(os.environ.get("NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS", "3600"))
NOTIFICATIONS_DISPATCH_BATCH_SIZE = int(os.environ.get("NOTIFICATIONS_DISPATCH_BATCH_SIZE", "500"))
NOTIFICATIONS_REDISPATCH_SECONDS = int(os.environ.get("NOTIFICATIONS_REDISPATCH_SECONDS", "1800"))
# Expiry reminders this many days before points lapse, each sent once per (member, date, offset).
NOTIFICATIONS_EXPIRY_REMINDER_DAYS = [
    int(days) for days in os.environ.get("NOTIFICATIONS_EXPIRY_REMINDER_DAYS", "30,7").split(",") if days.strip()
]
# A nudge when the next tier is at most this far (points, or CNY on a spend programme).
NOTIFICATIONS_UPGRADE_NUDGE_DISTANCE = Decimal(os.environ.get("NOTIFICATIONS_UPGRADE_NUDGE_DISTANCE", "200"))
# Win-back for members with points but no earn or spend for this many days (at most once a month).
NOTIFICATIONS_WINBACK_DAYS = int(os.environ.get("NOTIFICATIONS_WINBACK_DAYS", "90"))


# Health, outage and metrics.
# Seconds a client is asked to wait (Retry-After) when the database is unreachable (503).
SERVICE_UNAVAILABLE_RETRY_AFTER = int(os.environ.get("SERVICE_UNAVAILABLE_RETRY_AFTER", "5"))
# The longest /readyz waits for the broker.
READYZ_BROKER_TIMEOUT = float(os.environ.get("READYZ_BROKER_TIMEOUT", "1.0"))
# /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>`, and one from the
# loopback address when METRICS_ALLOW_LOOPBACK (off in production: behind a proxy every
# request comes from the loopback address).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOW_LOOPBACK = env_bool("METRICS_ALLOW_LOOPBACK", True)
PROMETHEUS_EXPORT_MIGRATIONS = False
# Queues whose waiting messages /metrics reports (points_queue_length), beside the default queue.
METRICS_QUEUES = [q.strip() for q in os.environ.get("METRICS_QUEUES", "").split(",") if q.strip()]

# Logs go to the console; LOG_FORMAT=json writes one JSON object a line (config.logs), with one
# line per request (logger points.requests) and per job batch.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "config.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "text"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
