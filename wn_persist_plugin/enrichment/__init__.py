"""Regions and names: static data (SDE) import, ESI lookups, filling stored rows."""
