"""Who may reach the studio: it serves this machine only unless told otherwise, and then only behind a password.

    auth = access.login_from_env()              # ("user", "password") from RLHF_STUDIO_AUTH=user:password, or None
    access.check_exposure("0.0.0.0", auth)      # StudioError: another address without a login is refused
    access.serve("0.0.0.0", auth)               # the same check, and remembers the address: exposed() is True
    access.inside(home / "spaces", "my-space", "export folder")   # a folder a visitor names, kept inside the root
    access.check_readable("/etc/passwd", "data.path")           # when exposed: only the studio home and uploads

`rlhf-studio ui --host 0.0.0.0 --auth user:password` (or RLHF_STUDIO_AUTH) serves other machines behind gradio's
login page, and what a visitor may name there is narrower whenever exposed() says people other than this machine's
user can open the studio: a folder to write to stays inside the studio home (inside()), and a data file to read
lies in the studio home or among the files uploaded through the UI (check_readable()), since the studio describes
a file it reads (its columns, a bad row) and would otherwise describe any file the server can read. On Hugging Face
Spaces the app must bind every interface for the Space's proxy, and who may open it is the Space's visibility, so
there a login is optional (RLHF_STUDIO_AUTH still adds one). Uploads are capped at max_upload(). Never imports gradio.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path

from studio import spaces
from studio.errors import ConfigError, StudioError

AUTH_ENV = "RLHF_STUDIO_AUTH"
UPLOAD_ENV = "RLHF_STUDIO_MAX_UPLOAD"
MAX_UPLOAD = "2gb"  # larger than any dataset file the studio reads whole into memory should be; refused above it


def max_upload() -> str:
    """The upload cap gradio enforces: MAX_UPLOAD, or RLHF_STUDIO_MAX_UPLOAD (e.g. 500mb) where set."""
    return os.environ.get(UPLOAD_ENV) or MAX_UPLOAD


def parse_login(text: str, where: str = "--auth") -> tuple[str, str]:
    """'user:password' -> ("user", "password"); anything else is one line naming where it came from."""
    user, sep, password = (text or "").partition(":")
    if not sep or not user.strip() or not password:
        raise ConfigError(f"{where}: expected USER:PASSWORD (a user name, a colon, then the password)")
    return user.strip(), password


def login_from_env() -> tuple[str, str] | None:
    text = os.environ.get(AUTH_ENV, "")
    return parse_login(text, AUTH_ENV) if text else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


def check_exposure(host: str, login: tuple[str, str] | None) -> None:
    """Refuse to serve another address than this machine's without a login (Spaces excepted, see the docstring)."""
    if is_loopback(host) or login is not None or spaces.on_spaces():
        return
    raise ConfigError(
        f"--host {host}: other machines could reach the studio, start runs and read your runs; give "
        f"--auth USER:PASSWORD (or set {AUTH_ENV}), or bind 127.0.0.1 and use an SSH tunnel"
    )


_served_host: str | None = None  # the address this process serves the UI on, once serve() has checked it


def serve(host: str, login: tuple[str, str] | None) -> None:
    """check_exposure, then remember the address, for exposed(): what the UI process calls before it launches."""
    global _served_host
    check_exposure(host, login)
    _served_host = host


def exposed() -> bool:
    """Whether people other than this machine's user may open the studio: it serves another address (behind a
    login), or it runs in a Space. Their requests must not reach the server's files outside the studio home."""
    return spaces.on_spaces() or (_served_host is not None and not is_loopback(_served_host))


def inside(root: Path, text: str, what: str) -> Path:
    """The folder `text` names under `root` (a relative name is taken inside root, `~` is this server's home), or one
    line refusing it when it would land anywhere but strictly inside root. The check is on the real path, with every
    ../ and symlink (of the folder or any parent) followed, so neither can lead out of root."""
    root = Path(root)
    out = root / Path(text.strip()).expanduser()  # an absolute path replaces root
    real_root, real = root.resolve(), out.resolve()
    if real_root not in real.parents:
        raise StudioError(
            f"{what} '{text.strip()}': this studio can be opened by others, so it writes only inside "
            f"{root}; give a folder name there, or leave it empty"
        )
    return out


def upload_folder() -> Path:
    """Where gradio keeps the files uploaded through the UI: GRADIO_TEMP_DIR, else <the temp folder>/gradio."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def check_readable(text: str, what: str) -> None:
    """When exposed(), one line refusing a file to read that lies outside the studio home and the upload folder,
    with every ../ and symlink followed. Does nothing for a studio only this machine's user can open."""
    if not exposed():
        return
    from studio.paths import studio_home

    real = Path(text.strip()).expanduser().resolve()
    roots = (studio_home(), upload_folder())
    if not any(root.expanduser().resolve() in real.parents for root in roots):
        raise StudioError(
            f"{what} = '{text.strip()}': this studio can be opened by others, so it reads only files "
            f"uploaded here or kept in {studio_home()}; upload the file in the Data tab"
        )
