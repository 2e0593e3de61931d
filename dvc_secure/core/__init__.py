"""Pure core: formats, keys, sidecar and record models, the verification engine.

No I/O, no DVC, no git, no wall clock (time is an argument). Only ``core.format`` imports
``cryptography``. See docs/architecture.md.
"""
