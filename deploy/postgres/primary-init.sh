#!/bin/sh
# Runs once, when the primary's data directory is first created (the
# official image runs /docker-entrypoint-initdb.d/*.sh then). It adds what a
# streaming replica needs: a replication role, and the pg_hba.conf line that
# admits replication connections ("all" in pg_hba.conf never matches them).
# Each replica creates its own replication slot when it first clones.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	--set=pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
