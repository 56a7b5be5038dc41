"""Local fake HTTP servers (127.0.0.1 only) for zKillboard's R2Z2 feed and the Wanderer
map API, used by the tests of the standalone host."""
