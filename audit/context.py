from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("scs_request_id", default="")
