"""Benchmarks of scs-cases on PostgreSQL: `python -m bench` runs them all (see results.md).

Importing the package points Django at the benchmark database and sets Django up, so that the
benchmark modules import the project's code at the top like any other module.
"""

from bench.common import configure_django

configure_django()
