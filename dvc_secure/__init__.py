"""dvc-secure: client-side encryption and verifiable versioning for DVC remotes.

Kept import-free: the startup hook imports this package in every Python process.
"""

__version__ = "0.2.0"
