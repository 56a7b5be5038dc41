"""Statistics: aggregation SQL (incremental and rebuild), retention, queries, the scheduler."""
