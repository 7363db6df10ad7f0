# The official Superset image plus the two database drivers airlake needs (the image ships none):
# PostgreSQL for its metadata and Trino for the lake. Versions pinned like the native stack's.
FROM apache/superset:6.1.0
USER root
RUN . /app/.venv/bin/activate \
    && uv pip install --no-cache "trino[sqlalchemy]==0.340.0" "psycopg2-binary==2.9.13"
USER superset
