"""wn-persist: killmail history and statistics for WandererNotifier."""

__version__ = "0.1.0"
