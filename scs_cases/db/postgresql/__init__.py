"""PostgreSQL through psycopg2, with BEGIN and queued statements carried by the next statement."""
