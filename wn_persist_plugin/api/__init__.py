"""The HTTP API (extra `web`): falcon views over the `statistics` query functions, served
by waitress, with Prometheus metrics. Import `api.app.create_app` only when the extra is
installed; `api.readiness` needs no web stack."""
