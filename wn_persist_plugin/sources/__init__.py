"""Clients of outside services: ESI, zKillboard R2Z2, the Wanderer map API."""
