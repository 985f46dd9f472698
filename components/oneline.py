"""A failure as the one line a tab shows: a StudioError's own message, anything else (a bug) named by its type.

    try:
        ...
    except Exception as err:
        return error_line(err)          # plain text, for a Textbox or a JSON answer
        return error_markdown(err)      # for a gr.Markdown: the same line, escaped and styled as an error

A message may hold text that Markdown or HTML would eat: `<column>` is an HTML tag to a Markdown renderer, and a
key such as `max_new_tokens` turns italic. error_markdown puts the line in an HTML block, where Markdown is not
applied, with <, > and & escaped, so it shows exactly as written, in the error colour (APP_CSS in components/app.py).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

from studio.errors import StudioError

ERROR_CLASS = "studio-error"


def error_line(err: BaseException) -> str:
    if isinstance(err, StudioError):
        return uploads_named(str(err))
    text = str(err).strip().splitlines()
    return f"Unexpected {type(err).__name__}: {uploads_named(text[0])}" if text else f"Unexpected {type(err).__name__}"


def uploads_named(text: str) -> str:
    """Uploaded files by the name the person gave them: gradio keeps an upload as <its folder>/<hash>/<name>, and
    "/tmp/gradio/3f9c.../rows.jsonl line 3" names nothing the person knows ("uploaded rows.jsonl line 3" does)."""
    return _upload_path().sub("uploaded ", text)


@lru_cache(maxsize=1)
def _upload_path() -> re.Pattern:
    from gradio.utils import get_upload_folder

    return re.compile(
        re.escape(str(Path(get_upload_folder()).resolve()))
        + r"/[0-9a-f]{16,}/|"
        + re.escape(get_upload_folder().rstrip("/"))
        + r"/[0-9a-f]{16,}/"
    )


def as_error(text: str) -> str:
    """One line of text for a gr.Markdown, shown as written and styled as an error."""
    return f'<div class="{ERROR_CLASS}">{html.escape(text, quote=False)}</div>'


def error_markdown(err: BaseException) -> str:
    return as_error(error_line(err))
