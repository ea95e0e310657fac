#!/usr/bin/env bash
# Started by `make run`: migrate, load demo data, then the web server, a Celery worker and beat.
# Ctrl-C or SIGTERM stops every process this script started: a warm shutdown first, then, after
# STOP_GRACE_SECONDS (default 20), whatever is still running is killed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${PORT:-8000}"
mkdir -p "$SCS_DATA_DIR"

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py load_demo
"$BIN/python" manage.py figures_refresh  # the public figures now; beat refreshes them hourly

pids=()
stop() {
    trap - INT TERM EXIT
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq $((${STOP_GRACE_SECONDS:-20} * 4))); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.25
    done
    # The worker's pool children and anything that did not stop in time.
    pkill -KILL -P "$(printf '%s,' "${pids[@]}" | sed 's/,$//')" 2>/dev/null || true
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

broker="${REDIS_URL:-an embedded filesystem broker in $SCS_DATA_DIR/broker}"
"$BIN/celery" -A scs_cases worker --beat --loglevel=INFO --concurrency=2 \
    --schedule="$SCS_DATA_DIR/celerybeat-schedule" &
pids+=($!)
"$BIN/python" manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)

cat <<MSG

  scs-cases is running at http://127.0.0.1:$PORT/
  Celery worker and beat are running on $broker.
  Database: ${DATABASE_URL:-SQLite at $SCS_DATA_DIR/scs_cases.sqlite3}
  Demo logins are listed above (user / password). Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
