#!/usr/bin/env bash
# Start a throwaway local PostgreSQL for the store/API tests and print the line that points them at it:
#   eval "$(.ci/start-postgres.sh)"   # sets MOVIEREC_TEST_POSTGRES_URL
# Installs Debian's `postgresql` package when no server binaries are present. The cluster lives in
# $MOVIEREC_PG_DIR (default /tmp/movierec-pg), listens on 127.0.0.1:$MOVIEREC_PG_PORT (default 54329), trusts
# local connections and runs without fsync: test data only. Stop it with
#   pg_ctl -D /tmp/movierec-pg/data stop   (as the postgres user when run as root)
# Everything but the export line goes to stderr.
set -euo pipefail

PORT="${MOVIEREC_PG_PORT:-54329}"
DIR="${MOVIEREC_PG_DIR:-/tmp/movierec-pg}"
DB="movierec_test"

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "installing postgresql with apt-get" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

# PostgreSQL refuses to run as root: run its tools as the `postgres` user then.
AS=()
mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
  chown postgres "$DIR"
fi

if [ ! -f "$DIR/data/PG_VERSION" ]; then
  "${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U movierec --auth=trust >/dev/null
fi
if ! "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
if ! "${AS[@]}" "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U movierec -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  "${AS[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U movierec "$DB"
fi
echo "export MOVIEREC_TEST_POSTGRES_URL=postgresql://movierec@127.0.0.1:$PORT/$DB"
