"""What a text field of a request body may hold.

Postgres stores no text with a NUL character in it: such a value would fail
only at the INSERT, as a database error. Refused where the body is parsed, a
NUL is an ordinary 400 naming the field, on every database.
"""

from __future__ import annotations

NO_NUL = "^[^\x00]*$"
"""A `msgspec.Meta(pattern=...)` for text that holds no NUL character."""
