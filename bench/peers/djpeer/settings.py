"""A minimal Django project serving django-notifications' JSON endpoints for the inbox
peer of the bench (S5). Run by gunicorn from bench/.venv-peers; the database comes from
DJPEER_DB (a scratch PostgreSQL database the bench creates and seeds)."""

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djpeer.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "notifications",
]
MIDDLEWARE = ["djpeer.auth.HeaderUserMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DJPEER_DB", "djpeer"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        # persistent connections, as a production deployment would configure
        "CONN_MAX_AGE": 600,
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
DJANGO_NOTIFICATIONS_CONFIG = {"USE_JSONFIELD": True}
