"""The endpoint judge's line to its server: one judging prompt to any OpenAI-compatible chat-completions server, and
the verdict read from the reply (studio/eval/judges.py's EndpointJudge asks each pair through it).

    reply = ask(spec, "Which answer is better? ...", api_key(spec))   # the reply text, retried as below
    parse_verdict("The better answer is B.")                          # "B"

The key is read from the environment variable the judge names, never from a config or the command line. A slow
answer (past timeout_s), a server error (5xx), a rate limit (429, waiting as long as its Retry-After asks, up to a cap)
and a dropped connection are tried again retries times with a growing wait; then ask raises EndpointGone with one
line (the judge stops and keeps the verdicts given so far). A refused key or a request the server rejects raises it
at once: asking again would not help. A reply that names neither answer is "no verdict", never an error.
Standard library only (urllib).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request

from studio.config import JudgeSpec
from studio.errors import StudioError

BACKOFF_FIRST = 0.5  # seconds before the first retry; doubled each time
BACKOFF_MOST = 8.0
RETRY_AFTER_MOST = 30.0  # a server asking for a longer wait than this is waited on for this long
REPLY_TOKENS = 16  # a verdict is a letter; a little room for "Answer A" or "[[B]]"


def parse_verdict(text: str) -> str | None:
    """ "A" or "B" from a judge's reply, or None when it names neither (or both without saying which is better)."""
    text = (text or "").strip()
    alone = re.fullmatch(r"[\W_]*(?:answer\s+)?([AB])[\W_]*", text, re.IGNORECASE)
    if alone:
        return alone.group(1).upper()
    marked = re.findall(r"\[\[([AB])\]\]", text)
    if marked:
        return marked[-1]
    said = re.findall(
        r"(?:answer|verdict|choice|better(?:\s+one)?|winner|prefer)\s*(?:is|:|=)?\s*[*\"'(\[]*\s*([AB])\b", text, re.I
    )
    if said:
        return said[-1].upper()
    letters = set(re.findall(r"\b([AB])\b", text))
    return letters.pop() if len(letters) == 1 else None


class EndpointGone(StudioError):
    """The server cannot give an answer: gone, too slow, refusing; one line naming the URL."""


def api_key(spec: JudgeSpec) -> str | None:
    """The key from the environment variable the judge names (None when it names none); one line when it is empty."""
    name = spec.api_key_env
    if not name:
        return None
    key = os.environ.get(name, "")
    if not key:
        raise StudioError(
            f"judge {spec.label}: the environment variable {name} is empty; set it to the server's key "
            "(the key is never written in a config)"
        )
    return key


def ask(spec: JudgeSpec, text: str, key: str | None) -> str:
    """The server's reply to one judging prompt, with retries; EndpointGone when it cannot be had."""
    url = spec.base_url.rstrip("/") + "/chat/completions"
    body = json.dumps(
        {
            "model": spec.model,
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": REPLY_TOKENS,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    backoff, asked_wait = BACKOFF_FIRST, None
    problem = ""
    for attempt in range(spec.retries + 1):
        if attempt:
            # a rate limit's Retry-After says how long; otherwise a wait that doubles each time
            time.sleep(asked_wait if asked_wait is not None else backoff)
            backoff = min(backoff * 2, BACKOFF_MOST) if asked_wait is None else backoff
            asked_wait = None
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=spec.timeout_s) as response:
                return _reply_text(response.read())
        except urllib.error.HTTPError as err:
            problem = f"HTTP {err.code} {_error_message(err)}".strip()
            if err.code == 429:
                asked_wait = _retry_after(err)
                continue
            if err.code >= 500:
                continue
            raise EndpointGone(f"judge {spec.label}: {url} refused the request ({problem})") from None
        except TimeoutError:
            problem = f"no answer within {spec.timeout_s:g} s"
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                problem = f"no answer within {spec.timeout_s:g} s"
            else:
                problem = f"cannot reach it ({err.reason})"
        except (ConnectionError, OSError) as err:  # reset or dropped mid-answer
            problem = f"the connection broke ({err})"
    tries = spec.retries + 1
    raise EndpointGone(
        f"judge {spec.label}: {url}: {problem}, {tries} {'try' if tries == 1 else 'tries'}; the verdicts given so far "
        "are kept"
    )


def _reply_text(raw: bytes) -> str:
    """The first choice's message text; anything else (an odd body) is an empty reply, which is no verdict."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def _error_message(err: urllib.error.HTTPError) -> str:
    """The server's own message in OpenAI's error shape, if it sent one, on one line."""
    try:
        message = json.loads(err.read())["error"]["message"]
    except (ValueError, KeyError, TypeError, OSError):
        return ""
    return " ".join(str(message).split())[:200]


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    """The seconds a rate limit asks to wait (capped), or None when it does not say in seconds."""
    try:
        return min(max(float(err.headers.get("Retry-After", "")), 0.0), RETRY_AFTER_MOST)
    except ValueError:
        return None
