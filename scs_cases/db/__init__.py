"""Database backends of scs-cases."""
