#!/bin/bash
# Run once by the official postgres image on an empty data directory: the cairn login role
# (no superuser, no CREATEROLE, no BYPASSRLS), its database, the analyst role and the
# runtime roles the services switch to under row-level security.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres -v pw="$CAIRN_DB_PASSWORD" <<'SQL'
CREATE ROLE cairn LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
CREATE ROLE cairn_analyst NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE cairn_auth_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
GRANT cairn_auth_rt TO cairn;
CREATE ROLE cairn_mover_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
GRANT cairn_mover_rt TO cairn;
CREATE ROLE cairn_stats_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
GRANT cairn_stats_rt TO cairn;
CREATE DATABASE cairn OWNER cairn ENCODING 'UTF8' TEMPLATE template0;
SQL
