"""A progress counter for bulk management commands.

On a terminal it is one line rewritten in place; when the output is piped or
captured it writes nothing, so logs and ``X=$(…)`` get only the result.
"""

from __future__ import annotations

from django.core.management.base import OutputWrapper


class Progress:
    def __init__(self, stdout: OutputWrapper) -> None:
        self.stdout = stdout
        self.enabled = stdout.isatty()
        self.shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        # \r back to the line start, ESC[K clears what a longer line left.
        self.stdout.write(f"\r{text}\x1b[K", ending="")
        self.stdout.flush()
        self.shown = True

    def finish(self) -> None:
        """End the counter line so the result starts on a line of its own."""
        if self.shown:
            self.stdout.write("")
            self.shown = False
