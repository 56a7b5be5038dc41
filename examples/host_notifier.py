"""A minimal host notifier: loads plugins through pluggy entry points, pushes a tracked
list, replays killmails from a JSONL file through `on_kill_processed`, waits for them to
be written (`flush_pending`), shuts down and prints each plugin's `pipeline_stats`.
Every call to a plugin goes through `pm.hook`.

    python examples/host_notifier.py --killmails mails.jsonl --track 2123019188,95465499 \
        [--track-file tracked.json] [--database-url sqlite:///wn_persist.db]

`--track-file` holds either the Wanderer map API answer (`{"data": [...]}`) or a JSON list
of entries in either shape the contract accepts. Settings not given here come from the
environment and `.env`, like in any host.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pluggy

from wn_persist_plugin import hookspecs


def tracked_characters(args: argparse.Namespace) -> list[dict]:
    characters: list[dict] = []
    if args.track:
        characters += [{"character_id": c.strip()} for c in args.track.split(",") if c.strip()]
    if args.track_file:
        data = json.loads(Path(args.track_file).read_text())
        characters += data["data"] if isinstance(data, dict) else data
    return characters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Replay killmails through wanderer_notifier plugins."
    )
    parser.add_argument("--killmails", required=True, help="JSONL file, one envelope per line")
    parser.add_argument("--track", help="comma-separated EVE character ids")
    parser.add_argument("--track-file", help="JSON file of tracked characters")
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    # The host side of the contract: the hook specifications and the plugins installed
    # under the `wanderer_notifier` entry point (wn-persist registers itself there).
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)

    config = {"ENABLE_PERSISTENCE": "true"}
    if args.database_url:
        config["DATABASE_URL"] = args.database_url
    pm.hook.on_startup(config=config)
    pm.hook.on_tracked_characters_updated(characters=tracked_characters(args))
    with open(args.killmails, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                pm.hook.on_kill_processed(killmail=json.loads(line))
    # Each plugin answers True once everything handed over is written (False: not in time).
    if not all(pm.hook.flush_pending(timeout=120.0)):
        logging.warning("a plugin did not write everything within 120 s")
    pm.hook.on_shutdown()

    for name, plugin in pm.list_name_plugin():
        # The hook of this one plugin: pluggy calls it without the others.
        others = [p for p in pm.get_plugins() if p is not plugin]
        for stats in pm.subset_hook_caller("pipeline_stats", remove_plugins=others)():
            print(json.dumps({"plugin": name, **stats.as_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
