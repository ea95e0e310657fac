#!/usr/bin/env bash
# The application working as a database role that owns nothing (audit.privileges), as
# docker-compose runs it: the owner migrates and grants, the application role loads the demo,
# files and routes cases, computes the figures, signs a checkpoint and verifies the audit log.
# Needs PostgreSQL at PGHOST/PGPORT with a superuser (PGUSER) to create the two roles.
set -euo pipefail
cd "$(dirname "$0")/.."

owner=scs_roles_owner
app=scs_roles_app
database=scs_roles_check
psql -q -d postgres -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$owner') THEN
        CREATE ROLE $owner LOGIN NOSUPERUSER CREATEROLE;
    END IF;
END \$\$;
DROP DATABASE IF EXISTS $database;
CREATE DATABASE $database OWNER $owner;
SQL

base="postgres://%s@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/$database"
as_owner=$(printf "$base" "$owner")
as_app=$(printf "$base" "$app")
export SCS_DATA_DIR="${SCS_DATA_DIR:-$PWD/var}/roles-check"
rm -rf "$SCS_DATA_DIR"

DATABASE_URL="$as_owner" .venv/bin/python manage.py migrate --noinput -v 0
DATABASE_URL="$as_owner" .venv/bin/python manage.py db_roles --app-role "$app"
DATABASE_URL="$as_app" .venv/bin/python manage.py load_demo --subjects 60 --records-per-agency 20
DATABASE_URL="$as_app" .venv/bin/python manage.py figures_refresh
DATABASE_URL="$as_app" .venv/bin/python manage.py audit_checkpoint
DATABASE_URL="$as_app" .venv/bin/python manage.py audit_verify --no-progress
if DATABASE_URL="$as_app" .venv/bin/python manage.py dbshell -- -c \
    "ALTER TABLE audit_auditevent DISABLE TRIGGER USER" >/dev/null 2>&1; then
    echo "the application role could switch the audit log's triggers off" >&2
    exit 1
fi
psql -q -d postgres -c "DROP DATABASE $database"
echo "roles check passed: the application works as $app, which owns nothing"
