"""The tus 1.0 resumable-upload protocol at ``/api/tus/`` (see docs/tus.md)."""
