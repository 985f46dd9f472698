"""A failure as the one line a tab shows: a StudioError's own message, anything else (a bug) named by its type.

    try:
        ...
    except Exception as err:
        return error_line(err)
"""

from __future__ import annotations

from studio.errors import StudioError


def error_line(err: BaseException) -> str:
    if isinstance(err, StudioError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"Unexpected {type(err).__name__}: {text[0]}" if text else f"Unexpected {type(err).__name__}"
