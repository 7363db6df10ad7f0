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
# DASHBOARD_RBAC: a dashboard's roles decide who opens it (the executive sees only the CEO and operations
# dashboards, without access to their datasets); airlake_dashboards.py sets them after each import.
FEATURE_FLAGS = {"ENABLE_TEMPLATE_PROCESSING": False, "DASHBOARD_RBAC": True}

# Superset's own screenshots (airlake dashboards screenshot) with Debian's chromium and chromium-driver.
WEBDRIVER_TYPE = "chrome"
WEBDRIVER_OPTION_ARGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
WEBDRIVER_CONFIGURATION = {"service": {"executable_path": "/usr/bin/chromedriver"}}
WEBDRIVER_BASEURL = os.environ.get("SUPERSET_WEBDRIVER_BASEURL", "http://127.0.0.1:8088/")
WEBDRIVER_BASEURL_USER_FRIENDLY = WEBDRIVER_BASEURL
SCREENSHOT_LOAD_WAIT = 60
