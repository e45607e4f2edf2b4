"""Run history in Postgres: versioned migrations, exactly-once writes, a buffer for outages."""
