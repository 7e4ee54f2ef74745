"""Mission Control settings: zero-config on SQLite, everything else from the environment.

Every variable is listed in README.md. A bad value stops start-up with a message naming it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from missioncontrol.config import (
    database_config,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_origins,
    env_str,
    persistent_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# An optional .env beside manage.py; real environment variables win.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env_str("MC_DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve()
try:
    # Owner-only when we create it: it holds the database, the secret key and sessions.
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"MC_DATA_DIR={DATA_DIR} cannot be created: {exc}") from None
# One made before us (mkdir -p, a volume) is made owner-only too, when it is ours to change.
with contextlib.suppress(OSError):
    if DATA_DIR.stat().st_mode & 0o077 and DATA_DIR.stat().st_uid == os.getuid():
        DATA_DIR.chmod(0o700)

SECRET_KEY = env_str("MC_SECRET_KEY") or persistent_secret(DATA_DIR / "secret_key")
# Secrets at rest (gateway tokens, device keys): see missioncontrol/secretbox.py. Empty = the key
# in DATA_DIR/encryption_key. Several processes of one installation must share it.
MC_ENCRYPTION_KEYS = env_list("MC_ENCRYPTION_KEYS", [])
DEBUG = env_bool("MC_DEBUG", False)

MC_HOST = env_str("MC_HOST", "127.0.0.1")
MC_PORT = env_int("MC_PORT", 3200, low=1, high=65535)
ALLOWED_HOSTS = env_list("MC_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_origins("MC_CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "missioncontrol.views.csrf_failure"
# Forwarded headers (X-Forwarded-For/-Proto) are believed only from these peers; see
# missioncontrol/proxy.py, which applies them at the ASGI layer for HTTP and WebSocket alike.
MC_TRUSTED_PROXIES = env_networks("MC_TRUSTED_PROXIES")

INSTALLED_APPS = [
    "daphne",
    "missioncontrol.apps.MissionControlAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "csp",
    "guardian",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "missioncontrol",
    "gateways",
    "agents",
    "tasks",
    "billing",
    "webhooks",
    "crons",
    "runs",
    "pipelines",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Proxy mistakes a request's headers reveal, named with their fix (deployment.py).
    "missioncontrol.deployment.DeploymentMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "missioncontrol.middleware.ApiBodyLimitMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Parameters and fields every database can store, or a 400 naming the field.
    "missioncontrol.middleware.StorableInputMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "missioncontrol.middleware.PageHeadersMiddleware",
    # Last, as django-axes asks: it turns a lockout signalled by the backend into its response.
    "axes.middleware.AxesMiddleware",
    "missioncontrol.middleware.TimeZoneMiddleware",
    # Innermost: keeps the whole chain synchronous (one thread hop per request; see its doc).
    "missioncontrol.middleware.SyncChainMiddleware",
]

ROOT_URLCONF = "missioncontrol.urls"
ASGI_APPLICATION = "missioncontrol.asgi.application"

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
                "csp.context_processors.nonce",
                "missioncontrol.context_processors.shell",
                "gateways.context_processors.gateway_switch",
                "billing.context_processors.spend",
                "webhooks.context_processors.disabled",
                "crons.context_processors.attention",
            ],
            "builtins": ["missioncontrol.templatetags.mc"],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
_default_db = f"sqlite:///{DATA_DIR / 'mission-control.sqlite3'}"
_db_url = env_str("DATABASE_URL", _default_db) or _default_db
_db = database_config(_db_url)
_db.setdefault("CONN_MAX_AGE", 0)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------
_layer_url = env_str("CHANNEL_LAYER_URL", "memory://") or "memory://"
if _layer_url.startswith("memory://"):
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
elif _layer_url.startswith(("redis://", "rediss://", "unix://")):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # A read waits longer than channels-redis's blocking pop (5 s): redis-py 8's own
                # default of 5 s failed receives on a loaded machine ("Timeout reading from"),
                # and with them the gateways' command loop.
                "hosts": [
                    {"address": _layer_url, "socket_timeout": 30, "socket_connect_timeout": 5}
                ],
                "capacity": 1000,
            },
        }
    }
else:
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER_URL must be memory:// or redis://host:port/db; got {_layer_url!r}."
    )

# State that every process must share (per-key rate limits): Redis, the channel layer's by
# default when it is Redis; empty = this process's memory (one process, the SQLite default).
MC_SHARED_STATE_URL = env_str(
    "MC_SHARED_STATE_URL", _layer_url if _layer_url.startswith(("redis://", "rediss://")) else ""
)
MC_SHARED_STATE_PREFIX = env_str("MC_SHARED_STATE_PREFIX", "mc")

# --- Auth -----------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First, as django-axes requires: it refuses locked-out credentials before any check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
MC_ADMIN_USERNAME = env_str("MC_ADMIN_USERNAME")
MC_ADMIN_PASSWORD = env_str("MC_ADMIN_PASSWORD")

# Single sign-on through the organisation's identity provider (OpenID Connect), beside local
# accounts: off unless MC_OIDC_ISSUER and MC_OIDC_CLIENT_ID are set (missioncontrol/sso.py).
MC_OIDC_ISSUER = env_str("MC_OIDC_ISSUER").rstrip("/")
MC_OIDC_CLIENT_ID = env_str("MC_OIDC_CLIENT_ID")
MC_OIDC_CLIENT_SECRET = env_str("MC_OIDC_CLIENT_SECRET")
MC_OIDC_LABEL = env_str("MC_OIDC_LABEL", "SSO") or "SSO"
MC_OIDC_ROLES_CLAIM = env_str("MC_OIDC_ROLES_CLAIM", "groups") or "groups"
MC_OIDC_ADMIN_GROUPS = env_list("MC_OIDC_ADMIN_GROUPS", [])
MC_OIDC_OPERATOR_GROUPS = env_list("MC_OIDC_OPERATOR_GROUPS", [])
MC_OIDC_VIEWER_GROUPS = env_list("MC_OIDC_VIEWER_GROUPS", [])
MC_OIDC_DEFAULT_ROLE = env_str("MC_OIDC_DEFAULT_ROLE")
if MC_OIDC_DEFAULT_ROLE not in ("", "viewer", "operator", "admin"):
    raise ImproperlyConfigured(
        f"MC_OIDC_DEFAULT_ROLE must be viewer, operator, admin or empty; got {MC_OIDC_DEFAULT_ROLE!r}."
    )
if bool(MC_OIDC_ISSUER) != bool(MC_OIDC_CLIENT_ID):
    raise ImproperlyConfigured(
        "MC_OIDC_ISSUER and MC_OIDC_CLIENT_ID go together: set both for single sign-on, or neither."
    )
if MC_OIDC_ISSUER and not (
    MC_OIDC_ISSUER.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]"))
):
    raise ImproperlyConfigured(
        f"MC_OIDC_ISSUER must be an https:// URL (http only on loopback); got {MC_OIDC_ISSUER!r}."
    )
if MC_OIDC_ISSUER:
    # The identity provider's callback only (None for everything else). Listed only with SSO on:
    # sessions signed in through it end if SSO is turned off.
    AUTHENTICATION_BACKENDS.append("missioncontrol.sso.Backend")
OIDC_RP_CLIENT_ID = MC_OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = MC_OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = env_str("MC_OIDC_SIGN_ALGO", "RS256") or "RS256"
OIDC_RP_SCOPES = env_str("MC_OIDC_SCOPES", "openid email profile") or "openid email profile"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
LOGIN_REDIRECT_URL_FAILURE = "/login/"
# Two-factor sign-in for local accounts (missioncontrol/two_factor.py): the name the
# authenticator app shows.
OTP_TOTP_ISSUER = "Mission Control"

# django-axes: lock a username+address pair after repeated failures; attempts live in the
# database, so a lockout survives a restart.
AXES_FAILURE_LIMIT = env_int("MC_LOGIN_FAILURE_LIMIT", 5, low=1, high=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("MC_LOGIN_LOCKOUT_MINUTES", 15, low=1, high=10080))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# The client address is REMOTE_ADDR, which proxy.py has already corrected for trusted proxies:
# never read forwarded headers here, where any client could forge them.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_VERBOSE = False

GUARDIAN_RAISE_403 = True
ANONYMOUS_USER_NAME = None

# --- Security headers ----------------------------------------------------------------------
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        # Browsers report what the policy blocked; the server logs it (views.csp_report).
        "report-uri": ["/csp-report/"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind TLS (MC_TLS=1, or a trusted proxy saying https) cookies are secure and HSTS is sent.
MC_TLS = env_bool("MC_TLS", False)
SESSION_COOKIE_SECURE = MC_TLS
CSRF_COOKIE_SECURE = MC_TLS
SECURE_HSTS_SECONDS = 31536000 if MC_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
# `check --deploy`: Django's generic warnings about these are decided by MC_TLS above (and the
# proxy redirects to https); missioncontrol/checks.py says what to set, in our variables. HSTS
# leaves out subdomains and the preload list on purpose: Mission Control on mc.example.com must
# not force https on the rest of the organisation's names.
SILENCED_SYSTEM_CHECKS = [
    "security.W004",
    "security.W005",
    "security.W008",
    "security.W012",
    "security.W016",
    "security.W021",
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS: list[Any] = [BASE_DIR / "static"]
# Swagger UI for /api/v1/docs/ from django-ninja's package (found without importing it: the
# API loads with its first request, missioncontrol/urls.py).
_ninja = importlib.util.find_spec("ninja")
if _ninja is not None and _ninja.submodule_search_locations:
    STATICFILES_DIRS.append(
        ("ninja", Path(_ninja.submodule_search_locations[0]) / "static" / "ninja")
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "missioncontrol.storage.StaticStorage"},
}
# Only the hashed copies are kept (every page names its files through {% static %}): half the
# files to compress on a first start, half the disk.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("MC_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# --- Retention (pruned by the supervisor's retention loop) -----------------------------------
MC_EVENT_RETENTION_HOURS = env_int("MC_EVENT_RETENTION_HOURS", 72, low=1, high=24 * 365)
MC_AUDIT_RETENTION_DAYS = env_int("MC_AUDIT_RETENTION_DAYS", 365, low=1, high=36500)
MC_RETENTION_INTERVAL_S = env_int("MC_RETENTION_INTERVAL_S", 3600, low=1, high=86400)
# Webhooks: delivery history kept this long; targets on loopback, link-local, private or other
# internal addresses are refused unless allowed (webhooks/dispatcher.py).
MC_WEBHOOK_RETENTION_DAYS = env_int("MC_WEBHOOK_RETENTION_DAYS", 30, low=1, high=3650)
MC_WEBHOOK_ALLOW_PRIVATE = env_bool("MC_WEBHOOK_ALLOW_PRIVATE", False)
# This process's supervisor sends webhook deliveries (off: another process does; claims make
# several dispatchers safe, this only chooses where the work runs).
MC_WEBHOOK_DISPATCHER = env_bool("MC_WEBHOOK_DISPATCHER", True)
# How long a claimed delivery stays with its dispatcher: if that process dies mid-send, another
# (or the restarted one) sends it once this has passed. Longer than one attempt (≤ 10 s).
MC_WEBHOOK_CLAIM_S = env_int("MC_WEBHOOK_CLAIM_S", 30, low=1, high=3600)
# Notifications: this process's supervisor watches Needs attention and sends the messages
# (off: another process does); the address people reach this installation at (the links in
# messages); e-mail through an SMTP URL (smtp+tls://user:password@host:587 for STARTTLS,
# smtp+ssl://…:465 for TLS, smtp://host:25 plain; the password may be percent-encoded), sent
# from MC_EMAIL_FROM.
MC_NOTIFICATIONS = env_bool("MC_NOTIFICATIONS", True)
MC_PUBLIC_URL = env_str("MC_PUBLIC_URL", f"http://localhost:{MC_PORT}")
MC_EMAIL_URL = env_str("MC_EMAIL_URL", "")
# Django 6.1's mailers (no EMAIL_* settings: deprecated); unset, sending fails with the remedy.
MAILERS: dict[str, Any] = {"default": {"BACKEND": "missioncontrol.mail.NotConfigured"}}
if MC_EMAIL_URL:
    try:
        _mail = environ.Env.email_url_config(MC_EMAIL_URL)
    except Exception as exc:
        raise ImproperlyConfigured(f"MC_EMAIL_URL is not an e-mail URL: {exc}") from None
    MAILERS["default"] = {
        "BACKEND": _mail.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"),
        "OPTIONS": {
            "host": _mail.get("EMAIL_HOST", "localhost"),
            "port": _mail.get("EMAIL_PORT") or 25,
            "username": _mail.get("EMAIL_HOST_USER", ""),
            "password": _mail.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": bool(_mail.get("EMAIL_USE_TLS")),
            "use_ssl": bool(_mail.get("EMAIL_USE_SSL")),
            "timeout": 10,
        },
    }
DEFAULT_FROM_EMAIL = env_str("MC_EMAIL_FROM", "Mission Control <mission-control@localhost>")
# Cron monitoring: how often the supervisor looks for late jobs, and how long run history stays.
MC_CRON_CHECK_S = env_int("MC_CRON_CHECK_S", 10, low=1, high=3600)
MC_CRON_RUN_RETENTION_DAYS = env_int("MC_CRON_RUN_RETENTION_DAYS", 90, low=1, high=3650)

# --- Real time ------------------------------------------------------------------------------
# A returning client is replayed at most this many events; beyond that it reloads its panels.
MC_LIVE_REPLAY_LIMIT = env_int("MC_LIVE_REPLAY_LIMIT", 1000, low=10, high=100000)
# How long a hidden tab keeps its connection before it pauses (milliseconds).
MC_LIVE_GRACE_MS = env_int("MC_LIVE_GRACE_MS", 10000, low=0, high=3600000)

# --- Agents ---------------------------------------------------------------------------------
# A live agent turns stale after 2 × its heartbeat interval, offline after this long unseen.
MC_AGENT_OFFLINE_AFTER_S = env_int("MC_AGENT_OFFLINE_AFTER", 600, low=30, high=7 * 86400)
MC_AGENT_DEFAULT_INTERVAL_S = env_int("MC_AGENT_HEARTBEAT_INTERVAL", 30, low=1, high=3600)
# How often the worker moves silent agents to stale/offline.
# This process's supervisor holds the gateway connections (and takes commands for them). Off:
# it holds none (e.g. a second `serve` beside the one that does, on one database).
MC_GATEWAY_CONNECTORS = env_bool("MC_GATEWAY_CONNECTORS", True)
MC_AGENT_SWEEP_INTERVAL_S = env_int("MC_AGENT_SWEEP_INTERVAL", 5, low=1, high=3600)
# A run's lease: an agent that neither heartbeats nor reports on it for this long loses it (the
# run is lost, the task goes back to To do). At least three of the agent's heartbeat intervals.
MC_RUN_LEASE_S = env_int("MC_RUN_LEASE", 120, low=5, high=86400)
# Bodies larger than this are refused with 413 on the agent API.
# Per-key rate limit of the agent API (benchmarks drive one key far beyond it).
MC_API_RATE_LIMIT_OFF = env_bool("MC_BENCH_NO_RATE_LIMIT", False)
MC_API_MAX_BODY = env_int("MC_API_MAX_BODY", 1024 * 1024, low=1024, high=64 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(MC_API_MAX_BODY, 2621440)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # The webhook dispatcher's client: every request at INFO (each attempt is stored anyway).
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # A bad Host header is answered 400; a scanner's noise needs no traceback in the log.
        "django.security.DisallowedHost": {"level": "CRITICAL"},
    },
}
