#!/bin/sh
# Runs once, on the first start of the compose postgres service (docker-entrypoint-initdb.d): the image has
# created the catalog role and database from POSTGRES_USER/POSTGRES_DB; this adds Superset's.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE ${SUPERSET_DB_USER} WITH LOGIN PASSWORD '${SUPERSET_DB_PASSWORD}';
CREATE DATABASE ${SUPERSET_DB} OWNER ${SUPERSET_DB_USER};
SQL
