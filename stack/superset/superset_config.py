"""Superset's configuration for airlake, read from the environment.

The native stack (``airlake stack up``) and docker-compose.yml both point ``SUPERSET_CONFIG_PATH`` at this file
and set the variables below; nothing secret is written here.
"""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URI"]

# One machine, two gunicorn workers: keep the metadata pool small.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_pre_ping": True}

# Plain HTTP on 127.0.0.1 (or the compose network): no HTTPS redirects or secure-only cookies.
TALISMAN_ENABLED = False
SESSION_COOKIE_SECURE = False
ENABLE_PROXY_FIX = False

# In-process caches and rate limits: no Redis in this stack.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = CACHE_CONFIG
RATELIMIT_STORAGE_URI = "memory://"

SQLLAB_TIMEOUT = 120
SUPERSET_WEBSERVER_TIMEOUT = 120
FEATURE_FLAGS = {"ENABLE_TEMPLATE_PROCESSING": False}
