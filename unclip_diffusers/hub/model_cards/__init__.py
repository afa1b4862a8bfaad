"""Jinja templates of the model cards `unclip-push` writes (package data)."""
