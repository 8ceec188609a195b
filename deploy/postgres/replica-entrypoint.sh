#!/bin/sh
# A streaming read replica of the primary. On first start the data directory
# is empty: clone the primary with pg_basebackup (--write-recovery-conf
# writes standby.signal and primary_conninfo), then run as a hot standby.
# Later starts find the data and resume streaming.
#
# The replica streams through a replication slot, so the primary keeps the
# WAL a lagging or restarting replica still needs (bounded by the primary's
# max_slot_wal_keep_size). The slot is named REPLICATION_SLOT, or after the
# pod's ordinal in a StatefulSet (postgres-replica-0 uses replica_0), and is
# created on the primary if it does not exist yet.
set -eu

: "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?}"
slot="${REPLICATION_SLOT:-replica_${HOSTNAME##*-}}"
# libpq reads the password from the environment, in pg_basebackup and in the
# WAL receiver the server starts alike.
export PGPASSWORD="$REPLICATION_PASSWORD"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	until pg_isready --host "$PRIMARY_HOST" --username replicator --quiet; do
		echo "waiting for the primary at $PRIMARY_HOST"
		sleep 1
	done
	create_slot=--create-slot
	if [ -n "$(psql --host "$PRIMARY_HOST" --username replicator --dbname postgres --no-psqlrc -tAc \
		"SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot'")" ]; then
		create_slot=
	fi
	pg_basebackup --host "$PRIMARY_HOST" --username replicator --pgdata "$PGDATA" \
		--wal-method stream --slot "$slot" $create_slot \
		--write-recovery-conf --checkpoint fast --progress
fi

# hot_standby_feedback keeps the primary from vacuuming rows a long replica
# read (a worker's report, a search) still needs, instead of cancelling it.
exec postgres -c hot_standby=on -c hot_standby_feedback=on "$@"
