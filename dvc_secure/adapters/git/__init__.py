"""The git adapter: plumbing reads (no pygit2, for hooks), pygit2 history walks, hook install."""
