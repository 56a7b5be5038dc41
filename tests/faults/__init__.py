"""The fault suite (see README.md)."""
