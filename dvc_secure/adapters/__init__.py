"""Adapters: the only code that talks to DVC (``adapters.dvc``), git (``adapters.git``) and
this machine's files (``adapters.local``). They may import the core, never services or cli."""
