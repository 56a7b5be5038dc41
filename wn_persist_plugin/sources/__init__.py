"""Clients of outside services: ESI, zKillboard R2Z2 and history, the Wanderer map API;
`http` holds the session factory, backoff and failure causes they share."""
