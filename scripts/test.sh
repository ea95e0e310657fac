#!/usr/bin/env bash
# Run by `make test`. Without DATABASE_URL the suite runs on SQLite and skips, with a reason,
# the tests that need PostgreSQL, Redis or a browser. .ci/run sets SCS_REQUIRE_SERVICES=1,
# which turns those skips into failures.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    echo "DATABASE_URL is not set: running on SQLite; PostgreSQL-only tests will be skipped."
fi
[[ -n "${REDIS_URL:-}" && -n "${SCS_CACHE_URL:-}" ]] ||
    echo "REDIS_URL or SCS_CACHE_URL is not set: tests that need a real Redis will be skipped."
[[ "${SCS_BROWSER_TESTS:-0}" == "1" ]] || echo "SCS_BROWSER_TESTS is not 1: browser tests will be skipped."
echo "The suite runs on a frozen clock at ${SCS_TEST_DATE:-its default date} (SCS_TEST_DATE, tests/clock.py)."
exec .venv/bin/python -m pytest "$@"
