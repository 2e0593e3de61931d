"""The git adapter: history walks (pygit2) and, later, hook installation."""
