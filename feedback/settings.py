"""Settings: one file, every knob from the environment.

Fails loudly: DEBUG is off unless asked for, and outside DEBUG there is no default
SECRET_KEY and no default ALLOWED_HOSTS. Secrets may also come from `<NAME>_FILE`.
A development `.env` file (see `dotenv_load`) fills in what the environment leaves out,
for DEBUG runs only.
"""

import os
import warnings
from pathlib import Path
from typing import overload

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@overload
def env(name: str, default: None = None) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
def env(name: str, default: str | None = None) -> str | None:
    """A variable from the environment, or from the file named by NAME_FILE."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = env(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in (env(name, default) or "").split(",") if part.strip()]


def dotenv_read(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a .env file; blank lines and `#` comments are skipped."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key.isidentifier():
            raise ImproperlyConfigured(f"{path}, line {number}: {line!r} is not KEY=VALUE.")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def dotenv_load() -> None:
    """Development defaults from `.env` (written by `make run`), under the environment.

    Variables already in the environment win. The file applies only to a process that
    runs with DEBUG on: one told DEBUG=0 (production, the test suite) ignores it whole,
    so a development SECRET_KEY can never sign anything in production, and production
    (no .env) still refuses to start without SECRET_KEY and ALLOWED_HOSTS.
    """
    path = Path(os.environ.get("DOTENV_PATH") or BASE_DIR / ".env")
    if not path.is_file():
        return
    added = {key: value for key, value in dotenv_read(path).items() if key not in os.environ}
    os.environ.update(added)
    if not env_bool("DEBUG", False):
        for key in added:
            del os.environ[key]


dotenv_load()

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env("SECRET_KEY") or ""  # a str for type checkers: unset and empty are refused alike
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (or set SECRET_KEY_FILE).")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "ninja",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "labeling",
]

# The session, authentication, messages, CSP and htmx middleware serve the web
# UI only: the classes in feedback/middleware.py are Django's (and the packages') own,
# passing /api/ requests (bearer tokens, JSON) straight through.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (after `collectstatic`), compressed, before anything else runs.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "feedback.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "feedback.middleware.AuthenticationMiddleware",
    "feedback.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "feedback.middleware.CSPMiddleware",
    "feedback.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns repeated failed logins into a lockout.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login attempts: after AXES_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("LOGIN_LOCKOUT_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "labeling.views.errors.locked_out"  # a page saying when the lockout ends

ROOT_URLCONF = "feedback.urls"
WSGI_APPLICATION = "feedback.wsgi.application"

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

# SQLite, whichever way it is named (no DATABASE_URL, or a sqlite:/// one), gets the same options:
# - IMMEDIATE takes the write lock when a transaction starts, so concurrent claims are
#   serialized instead of failing half-way ("database is locked"); `timeout` is how long
#   a writer waits for the lock.
# - WAL: readers never wait for the writer, and a commit appends to one file. With
#   synchronous=FULL each commit waits for one fsync (the rollback journal's default
#   took four). A lease lowers it to NORMAL for its own transaction only (see
#   labeling/services/assignment.py); a judgment always waits for the disk.
# The WAL mode is kept in the database file: a backup must copy the -wal file too, or use
# `sqlite3 db.sqlite3 ".backup copy.sqlite3"` (README, "Backup and restore").
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": env_int("SQLITE_TIMEOUT_SECONDS", 20),
    "init_command": "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL",
}

DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_PREPARED_STATEMENTS", True):
        # The annotation loop's hand-written statements (labeling/db/sql.py) are
        # prepared on each connection from their second use; the ORM's are not.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # Kept open like a DATABASE_URL's: in WAL mode the last connection to close
            # checkpoints the log and deletes it, two fsyncs per request (p50 44 ms, not 8).
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
# `collectstatic` writes a gzip copy of each file beside it; WhiteNoise serves it to browsers
# that accept it (the annotate page's script and styles: 80 KB as sent, about 25 KB compressed).
# Until `collectstatic` has run (development, tests) there is no STATIC_ROOT, and runserver or the
# test server serves the files from the apps; WhiteNoise's warning about it says nothing new.
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SAMESITE = "Lax"
# Behind HTTPS in production (see README): redirect plain HTTP, send HSTS, and trust
# the proxy's X-Forwarded-Proto when told to.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy: no inline script, nothing from other origins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Background work (imports and exports started from the web or the API) goes through
# the tasks API: inline by default; TASKS_BACKEND=database queues it for
# `manage.py db_worker` processes.
_TASK_BACKENDS = {
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
_task_backend = env("TASKS_BACKEND", "immediate")
if _task_backend not in _TASK_BACKENDS:
    raise ImproperlyConfigured(f"TASKS_BACKEND={_task_backend!r}; use one of {', '.join(_TASK_BACKENDS)}.")
TASKS = {"default": {"BACKEND": _TASK_BACKENDS[_task_backend]}}

# Job files (uploaded imports, finished exports) and the shared cache that carries
# job progress between worker and web processes.
LABELING_JOBS_DIR = Path(env("LABELING_JOBS_DIR", str(BASE_DIR / "var" / "jobs")))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": env("CACHE_DIR", str(BASE_DIR / "var" / "cache")),
    }
}
LABELING_MAX_UPLOAD_BYTES = env_int("LABELING_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Labeling knobs.
LABELING_MAX_TEXT_CHARS = env_int("LABELING_MAX_TEXT_CHARS", 200_000)
# Import files (or folders) at least this large are read and checked in a second process
# while the import writes; -1 reads every file in the importing process.
LABELING_IMPORT_PROCESS_MIN_BYTES = env_int("LABELING_IMPORT_PROCESS_MIN_BYTES", 8 * 1024 * 1024)
LABELING_DEFAULT_LEASE_SECONDS = env_int("LABELING_DEFAULT_LEASE_SECONDS", 1800)
# How often (per process and project) a claim first releases expired leases.
LABELING_EXPIRY_CHECK_SECONDS = float(env("LABELING_EXPIRY_CHECK_SECONDS", "1") or 1)
# Up to this many judgments the dashboard computes its figures in the request; above,
# it shows the stored ones at once and a background task refreshes them.
LABELING_STATS_INLINE_JUDGMENTS = env_int("LABELING_STATS_INLINE_JUDGMENTS", 50_000)

# The API checks a bearer token against the database at most this often per worker
# process: a revoked token, or a deactivated user's, keeps working for at most this
# many seconds (in a process that saw it just before). 0 checks every request.
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 5)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
}
