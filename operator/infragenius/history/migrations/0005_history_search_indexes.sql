-- "Has this happened before?" searches by workload name or its owner within a namespace, newest first
-- (the server's search_finding_history): with the filtered column second, an index scan reads only that
-- workload's rows instead of the whole namespace's (benchmarks/server_load.py: p95 145 ms -> 10-26 ms at
-- 1,000,000 rows under load). A plain CREATE INDEX: on a very large findings table, run it in a
-- maintenance window, as it holds off history writes while it builds.
CREATE INDEX findings_namespace_name ON findings (namespace, name, observed_at DESC);
CREATE INDEX findings_namespace_owner ON findings (namespace, owner_name, observed_at DESC);
