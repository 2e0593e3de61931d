"""The checks dvc-secure's git hooks run.

``pre_commit`` (also pre-merge-commit and prepare-commit-msg), ``pre_push``,
``content_scan`` (staged blobs) and ``problems`` (what a hook reports). The CLI imports the
hook's own module so the pre-commit path never loads pygit2 or DVC.
"""
