#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the sweep tests (Debian packages).
# Usage: eval "$(bash .ci/postgres.sh start)"  ...  bash .ci/postgres.sh stop DATADIR
set -euo pipefail
PORT=${PGPORT_TEST:-54329}
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

case "${1:-start}" in
start)
    if [ -z "$(bindir)" ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    fi
    BIN=$(bindir)
    DATA=$(mktemp -d /tmp/deepchrome-pg.XXXXXX)
    RUN_AS=()
    if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
        id postgres >/dev/null 2>&1 || useradd --system postgres
        chown postgres "$DATA"
        RUN_AS=(runuser -u postgres --)
    fi
    "${RUN_AS[@]}" "$BIN/initdb" -D "$DATA/db" -U postgres --auth=trust >/dev/null
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/log" -w \
        -o "-h 127.0.0.1 -p $PORT -k $DATA" start >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -q -c "CREATE DATABASE deepchrome" >/dev/null
    echo "export DEEPCHROME_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$PORT/deepchrome"
    echo "export DEEPCHROME_TEST_PGDATA=$DATA"
    ;;
stop)
    DATA=${2:?data dir}
    RUN_AS=()
    [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
    "${RUN_AS[@]}" "$(bindir)/pg_ctl" -D "$DATA/db" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DATA"
    ;;
esac
