"""Run every benchmark in sequence (`make bench`), then print and store the summary."""

from __future__ import annotations

import time

from bench import (
    audit_export,
    audit_verify,
    audit_write,
    case_routing,
    common,
    dashboard_queue,
    import_records,
    read_logging,
    transparency,
)


def main() -> None:
    started = time.perf_counter()
    results = [
        import_records.run(),
        audit_verify.run(),
        audit_write.run(),
        case_routing.run(),
        transparency.run(),
        read_logging.run(),
        dashboard_queue.run(),
        audit_export.run(),
    ]
    common.summary(results, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
