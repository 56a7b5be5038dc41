"""Killmail parsing: every envelope a host may hand over, turned into one typed value."""
