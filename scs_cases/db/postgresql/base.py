"""Django's PostgreSQL backend, with transactions opened and ended in SQL by the backend itself.

psycopg2 sends `BEGIN` and `COMMIT` as statements of their own, so a transaction of n statements
costs n + 2 round trips to the server, and every audit event one more. This backend keeps psycopg2
in its autocommit mode and manages Django's transactions in SQL:

- `BEGIN` is sent in front of the transaction's first statement, in the same query string;
- a statement queued with `DatabaseWrapper.run_with_next_statement()` (the audit writer's append)
  is sent in front of the next statement on the connection, or in front of `COMMIT`;
- a rollback, or a rollback to a savepoint, drops what is still queued: it would undo it anyway,
  and every savepoint was created by a statement that carried what had been queued before it.

So a transaction of n statements costs n round trips, and its audit events none of their own.
Each statement still sees what the statements queued before it wrote: reading the audit log inside
a transaction shows that transaction's events. A queued statement runs in the same simple-protocol
query as the statement that carries it, so if it fails, the transaction is aborted and the error is
raised by the carrying statement (or by the commit), and Django rolls back as for any failure.
A string the server cannot parse runs none of its parts; if it carried the BEGIN, the BEGIN and
the queued statements stay pending for the next statement.

Where this differs from Django's own backend:
- `commit()` of a transaction an earlier error aborted raises instead of letting the server turn
  it into a silent rollback, because a queued statement's error may have reached code that chose
  to ignore the error of its own statement;
- inside a transaction, `QuerySet.iterator()` fetches its rows on the client: psycopg2 declares a
  server-side cursor of an autocommit connection WITH HOLD (refused with FOR UPDATE, copied out
  at COMMIT) and refuses one without;
- psycopg2's large objects are refused (psycopg2 checks its own autocommit flag); nothing here
  uses them.

`tests/test_postgresql_backend.py` shows what goes to the server; `..._semantics.py` holds the
backend to Django's transaction semantics, beside the stock backend where they should agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import psycopg2
from django.db.backends.postgresql import base
from psycopg2 import extensions

# A loop of audited steps without a statement between them would otherwise build one huge query.
MAX_QUEUED = 100
_IN_TRANSACTION = (extensions.TRANSACTION_STATUS_INTRANS, extensions.TRANSACTION_STATUS_INERROR)


class CarryingConnection(extensions.connection):
    """A psycopg2 connection whose transactions are begun and ended in SQL (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CarryingCursor
        self.begin_pending = b""  # the BEGIN the next statement must carry, if any
        self.queued: list[bytes] = []  # statements, already quoted, for the next one to carry
        # While Django's autocommit is off: the BEGIN of every transaction, as psycopg2 would.
        self.begin_statement = b""

    @property
    def in_transaction(self) -> bool:
        """A transaction was requested, whether or not its BEGIN has reached the server yet."""
        return bool(self.begin_pending) or self.get_transaction_status() in _IN_TRANSACTION

    def begin(self, statement: bytes = b"BEGIN") -> None:
        if self.in_transaction:
            raise psycopg2.ProgrammingError("a transaction is already open on this connection")
        self.begin_statement = self.begin_pending = statement

    def end_transactions(self) -> None:
        """Django's autocommit is back on: no transaction is to begin any more."""
        self.begin_statement = self.begin_pending = b""
        self.queued = []

    def _next_transaction(self) -> None:
        self.begin_pending, self.queued = self.begin_statement, []

    def _check_open(self) -> None:
        if self.closed:
            raise psycopg2.InterfaceError("connection already closed")

    def queue(self, sql: str, params: Sequence[Any]) -> None:
        if not self.in_transaction:
            raise psycopg2.ProgrammingError("statements are queued only inside a transaction")
        with extensions.cursor(self) as quoting:  # no cursor kept: no reference cycle
            self.queued.append(quoting.mogrify(sql, params))
        if len(self.queued) >= MAX_QUEUED:
            self.flush()

    def carry(
        self, send: Callable[[bytes], None], statement: bytes = b"", *, restore: bool = True
    ) -> None:
        """Send what is pending in front of `statement` (each part ended by a semicolon)."""
        begin, queued = self.begin_pending, self.queued
        self.begin_pending, self.queued = b"", []
        parts = [begin, *queued] if begin else queued
        try:
            send(b"".join(part + b";" for part in parts) + statement)
        except psycopg2.Error:
            if (
                restore
                and begin
                and self.get_transaction_status() == extensions.TRANSACTION_STATUS_IDLE
            ):
                # The server refused the whole string before running any of it (a syntax
                # error): no transaction began, so the next statement must carry it all again.
                self.begin_pending, self.queued = begin, queued
            raise

    def flush(self) -> None:
        """Send what is pending on its own, for statements that cannot carry it."""
        if self.begin_pending or self.queued:
            self.carry(self._send)

    def discard_queued(self) -> None:
        self.queued = []

    def commit(self) -> None:
        self._check_open()
        try:
            if self.begin_pending and not self.queued:
                return  # nothing ran: there is no transaction on the server
            if self.get_transaction_status() == extensions.TRANSACTION_STATUS_INERROR:
                # The server would answer COMMIT with ROLLBACK, and no error.
                raise psycopg2.errors.InFailedSqlTransaction(
                    "the transaction was aborted by an earlier error and cannot commit"
                )
            if self.queued or self.get_transaction_status() in _IN_TRANSACTION:
                # A failed COMMIT ends the transaction: what it carried must not be restored.
                self.carry(self._send, b"COMMIT", restore=False)
        finally:
            self._next_transaction()

    def rollback(self) -> None:
        self._check_open()
        self.begin_pending = b""
        self.queued = []
        try:
            if self.get_transaction_status() in _IN_TRANSACTION:
                self._send(b"ROLLBACK")
        finally:
            self._next_transaction()

    def close(self) -> None:
        self.end_transactions()
        super().close()

    def _send(self, query: bytes) -> None:
        with self.cursor() as cursor:  # nothing is pending any more: it goes out as it is
            cursor.execute(query)


class CarryingCursor(extensions.cursor):
    """Sends what its connection has pending in front of the statement, in one query string."""

    connection: CarryingConnection

    def execute(self, query: str | bytes, vars: Any = None) -> None:
        connection = self.connection
        if not (connection.begin_pending or connection.queued):
            return super().execute(query, vars)
        if self.name is not None:
            # A server-side cursor's statement becomes `DECLARE ... FOR <statement>`.
            connection.flush()
            return super().execute(query, vars)
        # Quote first: if the parameters do not fit, nothing is taken and nothing is sent.
        statement = self.mogrify(query, vars)
        return connection.carry(super().execute, statement)

    def executemany(self, query: str | bytes, vars_list: Iterable[Any]) -> None:
        self.connection.flush()
        return super().executemany(query, vars_list)

    def callproc(self, procname: str, parameters: Any = None) -> Any:
        self.connection.flush()
        return super().callproc(procname, parameters)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> None:
        self.connection.flush()
        return super().copy_expert(sql, file, size)

    def copy_from(self, file: Any, table: str, *args: Any, **kwargs: Any) -> None:
        self.connection.flush()
        return super().copy_from(file, table, *args, **kwargs)

    def copy_to(self, file: Any, table: str, *args: Any, **kwargs: Any) -> None:
        self.connection.flush()
        return super().copy_to(file, table, *args, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    connection: CarryingConnection | None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params["connection_factory"] = CarryingConnection
        params.pop("cursor_factory", None)  # the connection sets its own
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> CarryingConnection:
        connection: CarryingConnection = super().get_new_connection(conn_params)
        connection.autocommit = True  # for good: Django's transactions are begun in SQL
        return connection

    @property
    def _carrying(self) -> CarryingConnection:
        """The open driver connection; Django calls the methods below only once connected."""
        return cast(CarryingConnection, self.connection)

    def _set_autocommit(self, autocommit: bool) -> None:
        driver = self._carrying
        with self.wrap_database_errors:
            if not autocommit:
                driver.begin(self._begin_statement())
            elif driver.queued or driver.get_transaction_status() in _IN_TRANSACTION:
                # What psycopg2 says when autocommit is switched on inside a transaction; queued
                # statements count as work of the transaction, as if they had run.
                raise psycopg2.ProgrammingError("set_session cannot be used inside a transaction")
            else:
                driver.end_transactions()  # a BEGIN that no statement carried: nothing to end

    def create_cursor(self, name: str | None = None) -> Any:
        if name and not self.get_autocommit():
            # psycopg2 declares a named cursor of an autocommit connection WITH HOLD, which
            # PostgreSQL refuses for FOR UPDATE and materialises at COMMIT; psycopg2 refuses
            # WITHOUT HOLD in autocommit. Inside a transaction, fetch on the client instead.
            name = None
        return super().create_cursor(name)

    def _begin_statement(self) -> bytes:
        if "isolation_level" not in self.settings_dict["OPTIONS"]:
            return b"BEGIN"
        # Set by get_new_connection() from OPTIONS; django-stubs does not declare it.
        level = self.isolation_level.name.replace("_", " ")  # type: ignore[attr-defined]
        return f"BEGIN ISOLATION LEVEL {level}".encode()

    def _savepoint_rollback(self, sid: str) -> None:
        self._carrying.discard_queued()
        super()._savepoint_rollback(sid)  # type: ignore[misc]  # undeclared by django-stubs

    def run_with_next_statement(self, sql: str, params: Sequence[Any]) -> None:
        """Queue a statement of the open transaction; the next statement or the COMMIT sends it.

        For writes whose result nobody reads, such as audit appends: the statement costs no round
        trip of its own. An error it raises surfaces from the statement or commit that carried it.
        """
        self.ensure_connection()
        with self.wrap_database_errors:
            self._carrying.queue(sql, params)
