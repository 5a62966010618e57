"""SQL storage adapters: the audit ledger and API keys (SQLAlchemy 2 Core, Alembic migrations)."""
