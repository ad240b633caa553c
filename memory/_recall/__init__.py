"""Recall of evicted turns and archived chunks, one concept per module.

``passages`` (what a turn is indexed as), ``rank`` (scoring candidates from top-k
queries), ``fuse`` (phrases, alternating lists), ``pack`` (snippets for the prompt) and
``search`` (the session's ``Recall``, for the tool). Kept import-free here: the session
view imports ``passages`` while ``pack`` imports the view.
"""
