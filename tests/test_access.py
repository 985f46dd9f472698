"""Who can reach the studio and what its file routes serve (issue 10, items 11 and 12), tested against the running app.

python -m pytest tests/test_access.py -q
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from gradio_client.exceptions import AuthenticationError

from studio import access
from studio.errors import ConfigError
from tests.conftest import REPO, free_port, run_cli, served_studio


@pytest.mark.parametrize(
    "host, login, refused",
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("0.0.0.0", None, True),
        ("192.168.1.5", None, True),
        ("myhost", None, True),
        ("0.0.0.0", ("ann", "pw"), False),
    ],
)
def test_another_address_than_this_machine_needs_a_login(host, login, refused, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    if refused:
        with pytest.raises(ConfigError, match=f"--host {host}: other machines could reach the studio"):
            access.check_exposure(host, login)
    else:
        access.check_exposure(host, login)


def test_spaces_bind_every_interface_without_a_login(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/studio")  # the Space's visibility says who may open it
    access.check_exposure("0.0.0.0", None)


@pytest.mark.parametrize("text", ["", "ann", "ann:", ":pw", "  :pw"])
def test_a_malformed_login_is_one_line(text):
    with pytest.raises(ConfigError, match="--auth: expected USER:PASSWORD"):
        access.parse_login(text)
    assert access.parse_login("ann:pa:ss") == ("ann", "pa:ss")  # the password may hold colons


def test_ui_on_another_address_without_a_login_refuses_to_start(studio_home, monkeypatch):
    monkeypatch.delenv(access.AUTH_ENV, raising=False)
    port = free_port()
    result = run_cli("ui", "--host", "0.0.0.0", "--port", str(port), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --host 0.0.0.0: other machines could reach the studio")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_login_guards_the_studio_and_uploads_are_capped(studio_home, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv(access.AUTH_ENV, "ann:s3cret")
    monkeypatch.setenv(access.UPLOAD_ENV, "1kb")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "components", "--host", "127.0.0.1", "--port", str(port)]
    with _serving(argv, port, env) as url:
        assert httpx.get(f"{url}config").status_code == 401  # the app's config, and so its API, needs the login
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        client = Client(url, auth=("ann", "s3cret"), verbose=False)
        assert "/runs_table" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        cookies = client.cookies
        small = httpx.post(f"{url}gradio_api/upload", files={"files": ("a.jsonl", b"{}\n")}, cookies=cookies)
        big = httpx.post(f"{url}gradio_api/upload", files={"files": ("b.jsonl", b"x" * 4096)}, cookies=cookies)
    assert small.status_code == 200
    assert big.status_code == 413  # over RLHF_STUDIO_MAX_UPLOAD


@contextlib.contextmanager
def _serving(argv, port, env):
    """The url of the app started by argv; unlike served_app it makes no client, which a login would refuse."""
    server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "the studio did not start"
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_file_routes_serve_nothing_outside_the_studios_own_files(studio_home, tmp_path, monkeypatch):
    run = studio_home / "runs" / "20260101-000000-sft-abcd"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("stage: sft\nsecret_marker: run-config\n")
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    (hf_home / "token").write_text("hf_secret_marker_token")
    (tmp_path / ".env").write_text("SECRET_MARKER=1\n")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    targets = [
        "/etc/passwd",
        str(run / "config.yaml"),
        str(hf_home / "token"),
        str(tmp_path / ".env"),
        str(REPO / "pyproject.toml"),
        str(REPO / "studio" / "config.py"),
    ]
    with served_studio(studio_home) as (url, client):
        uploaded = httpx.post(f"{url}gradio_api/upload", files={"files": ("ok.jsonl", b'{"served": 1}\n')}).json()[0]
        served = httpx.get(f"{url}gradio_api/file={uploaded}")
        refused = {}
        for target in targets:
            for path in (target, f"{uploaded}/../../../../../..{target}", "..%2F" * 8 + target.lstrip("/")):
                for route in ("gradio_api/file=", "gradio_api/file/", "file="):
                    response = httpx.get(f"{url}{route}{path}")
                    refused[f"{route}{path}"] = (response.status_code, response.text)
    # The route works: a file the app itself received is served, so the refusals below are refusals.
    assert served.status_code == 200 and served.text == '{"served": 1}\n'
    for request, (status, body) in refused.items():
        assert status in (403, 404), request
        assert not any(
            marker in body for marker in ("root:", "secret_marker", "SECRET_MARKER", "[project]", "def option(")
        ), request
