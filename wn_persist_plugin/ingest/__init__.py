"""The one ingest path: match a killmail against the tracked set, build its involvement
rows, write them (background writer or synchronously)."""
