#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the journal's contract tests, on 127.0.0.1 only.
#
#   eval "$(.ci/postgres.sh start)"     # prints the exports the tests read
#   python3 -m pytest tests/store/test_journal_contract.py
#   .ci/postgres.sh stop "$EVALFLEET_PG_DATA"
#
# Needs Debian's postgresql package (apt-get install postgresql). As root the cluster runs as
# the `postgres` user (created if missing); as anyone else, as that user. The data directory is
# a new temporary directory, removed by `stop`. Port: EVALFLEET_PG_PORT (default 54329).
set -euo pipefail

PORT="${EVALFLEET_PG_PORT:-54329}"
DB=evalfleet_test

bindir() {
  local d
  # the newest installed major version first
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
    if [[ -x "$d/pg_ctl" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  done
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    dirname "$(command -v pg_ctl)"; return
  fi
  echo "postgres.sh: no PostgreSQL binaries (apt-get install postgresql)" >&2
  exit 1
}

as_owner() {  # run a command as the cluster's owner
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

failed_start() {  # leave nothing running and nothing behind; show why
  [[ -f "$data/log" ]] && tail -n 20 "$data/log" >&2
  as_owner "$bin/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$data"
}

start() {
  bin="$(bindir)"
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  data="$(mktemp -d "${TMPDIR:-/tmp}/evalfleet-pg.XXXXXX")"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$data"
  chmod 700 "$data"
  trap failed_start EXIT
  as_owner "$bin/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
  # trust for 127.0.0.1 only (and the cluster's own socket, in its data directory)
  printf '%s\n' "local all all trust" "host all all 127.0.0.1/32 trust" \
    | as_owner tee "$data/db/pg_hba.conf" >/dev/null
  as_owner "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$data/db" start >&2
  "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
  trap - EXIT
  echo "export EVALFLEET_PG_DATA=$data"
  echo "export EVALFLEET_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
}

stop() {
  local data="${1:-${EVALFLEET_PG_DATA:-}}"
  if [[ -z "$data" || ! -d "$data/db" ]]; then
    echo "postgres.sh stop: give the directory start printed (EVALFLEET_PG_DATA)" >&2
    exit 1
  fi
  as_owner "$(bindir)/pg_ctl" -D "$data/db" -m fast -w stop >&2 || true
  rm -rf "$data"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [DATA_DIR]" >&2; exit 2 ;;
esac
