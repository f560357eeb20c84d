"""The viewer role (issue 17): report pages shared with someone who must not get the IDE.

`quantstrip up` starts a second, standalone Voila server for viewers, on its own 127.0.0.1
port, over reports/viewer/ only, signing each request in against the vault's active viewers.
With a viewer's token none of the operator's routes answer (Lab, kernels on demand, contents,
/files, terminals, the settings, packages, monitor and logs pages) on either server, the report
pages load and work in Chromium, a page's kernel runs no code sent to it, and a revoked viewer
is shut out at once, open pages included."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from support.browser import Dashboard, _wait
from support.escapes import DUCKDB_ESCAPES
from support.sql_editor import run_in_editor

from quantstrip.dashboard import PAGES, VIEWER_PAGES

PAGE_TIMEOUT_MS = 120_000
REPO = Path(__file__).resolve().parents[1]


def request(
    url: str, method: str = "GET", token: str | None = None, cookie: str | None = None
) -> tuple[int, str, str]:
    """Status, Location and body of one request (redirects not followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    data = b"{}" if method in ("POST", "PUT", "PATCH") else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    if cookie:
        req.add_header("Cookie", cookie)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=120) as response:
            return int(response.status), "", response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers.get("Location") or "", ""


OPERATOR_ROUTES = [
    ("GET", "/lab"),
    ("GET", "/lab/tree/notebooks"),
    ("GET", "/tree"),
    ("GET", "/api/contents"),
    ("GET", "/api/contents/var/secrets/vault.json"),
    ("PUT", "/api/contents/pwned.ipynb"),
    ("GET", "/files/var/secrets/master.key"),
    ("GET", "/files/reports/settings.ipynb"),
    ("GET", "/view/reports/settings.ipynb"),
    ("GET", "/edit/reports/settings.ipynb"),
    ("POST", "/api/kernels"),
    ("GET", "/api/kernels"),
    ("POST", "/api/sessions"),
    ("GET", "/api/sessions"),
    ("GET", "/api/kernelspecs"),
    ("POST", "/api/terminals"),
    ("GET", "/api/terminals"),
    ("GET", "/terminals/websocket/1"),
    ("GET", "/api/config/notebook"),
    ("GET", "/api/me"),
    ("GET", "/voila/render/settings.ipynb"),
    ("GET", "/voila/render/packages.ipynb"),
    ("GET", "/voila/render/monitor.ipynb"),
    ("GET", "/voila/render/logs.ipynb"),
    ("GET", "/voila/render/reports/settings.ipynb"),
    ("GET", "/voila/render/../settings.ipynb"),
    ("GET", "/voila/render/%2E%2E/settings.ipynb"),
    ("GET", "/voila/render/..%2Fsettings.ipynb"),
    ("GET", "/voila/files/home.ipynb"),
    ("GET", "/voila/files/..%2F..%2Fvar%2Fsecrets%2Fmaster.key"),
    ("GET", "/voila/api/contents/..%2F..%2Fvar"),
]


def answers(status: int) -> bool:
    """A route answers when it serves something (2xx) or hands the viewer on (3xx) to something
    other than the sign-in page."""
    return 200 <= status < 300


def test_no_operator_route_answers_the_viewer_token(dashboard: Dashboard) -> None:
    answered = {}
    for server in (dashboard.viewer_base_url, dashboard.base_url):
        for method, path in OPERATOR_ROUTES:
            status, where, _body = request(f"{server}{path}", method, token=dashboard.viewer_token)
            if answers(status) or (300 <= status < 400 and "login" not in where):
                answered[(server, method, path)] = (status, where)
        # The operator's report pages are the operator's server's: a viewer token opens none.
        for name in PAGES:
            status, where, _ = request(
                f"{dashboard.base_url}/voila/render/reports/{name}.ipynb",
                token=dashboard.viewer_token,
            )
            if answers(status):
                answered[("operator", "GET", name)] = (status, where)
    assert answered == {}


def test_the_viewer_server_refuses_requests_without_a_viewer_token(dashboard: Dashboard) -> None:
    for token in (None, "", dashboard.token, "not-a-token"):
        status, where, _ = request(
            f"{dashboard.viewer_base_url}/voila/render/portfolio.ipynb", token=token
        )
        assert not answers(status), token
        assert status in (302, 403) and (status == 403 or "login" in where)


def test_the_viewer_root_holds_the_viewer_pages_only() -> None:
    served = {p.stem for p in (REPO / "reports" / "viewer").glob("*.ipynb")}
    assert served == {"home", *VIEWER_PAGES}
    assert not {"settings", "packages", "monitor", "logs"} & served


def open_viewer_page(page, dashboard: Dashboard, name: str, ready: str, token=None):  # type: ignore[no-untyped-def]
    if not hasattr(page, "failed_responses"):
        page.failed_responses = []
        page.on(
            "response",
            lambda r: r.status >= 400 and page.failed_responses.append((r.status, r.url)),
        )
    page.goto(dashboard.viewer_page_url(name, token), timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(ready, timeout=PAGE_TIMEOUT_MS)
    return page


def assert_clean(page, dashboard: Dashboard) -> None:  # type: ignore[no-untyped-def]
    # Leaving a page, Voila asks for its kernel's shutdown with a beacon the XSRF check refuses
    # (403): the server culls those kernels instead (jupyter_config/viewer/voila.py).
    failed = [
        u for s, u in getattr(page, "failed_responses", []) if "/voila/api/shutdown/" not in u
    ]
    assert failed == []
    errors = [e for e in page.console_errors if "favicon" not in e and "status of 403" not in e]
    assert errors == []
    assert dashboard.violations == [], "requests left loopback"
    assert "Traceback" not in page.content()
    assert dashboard.token not in page.content()


@pytest.mark.browser
def test_report_pages_load_and_work_for_a_viewer(page, dashboard: Dashboard) -> None:  # type: ignore[no-untyped-def]
    open_viewer_page(page, dashboard, "home", "a.qs-link")
    links = page.locator("a.qs-link").all_inner_texts()
    assert sorted(links) == sorted(VIEWER_PAGES.values())  # no IDE, settings, packages...
    assert str(dashboard.root) not in page.content()  # nor where the workspace lives
    open_viewer_page(page, dashboard, "portfolio", ".qs-stats table")
    assert "Portfolio" in page.locator(".qs-stats").inner_text()
    nav = page.locator(".qs-nav").first.inner_text()
    assert "Settings" not in nav and "Package" not in nav and "monitor" not in nav
    open_viewer_page(page, dashboard, "blotter", "text=Blotter")
    assert page.locator(".qs-refresh-marks").is_hidden()
    open_viewer_page(page, dashboard, "notifications", "text=Notification centre")
    assert page.locator("[class*='qs-resend-']").count() == 0
    open_viewer_page(page, dashboard, "sql_editor", ".qs-sql textarea")
    assert "rows in" in run_in_editor(
        page, "SELECT strategy, COUNT(*) FROM v_round_trips GROUP BY 1"
    )
    for name in ("read_text_secret", "attach_ledger_read_write", "sqlite_scan_other", "copy_table"):
        sql = DUCKDB_ESCAPES[name].replace("{secret}", str(dashboard.root / "var" / "x"))
        sql = sql.replace("{db}", str(dashboard.root / "var" / "quantstrip.db"))
        sql = sql.replace("{other}", str(dashboard.root / "var" / "simulation.db"))
        sql = sql.replace("{out}", str(dashboard.root))
        status = run_in_editor(page, sql)
        assert status.startswith("refused"), (name, status)
    assert_clean(page, dashboard)


def _kernel_id(html: str) -> str:
    found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', html)
    assert found, "the page names its kernel"
    return found.group(1)


def _message(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "viewer",
            "session": session,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
        "channel": "shell",
    }


def test_a_viewer_page_kernel_runs_no_code_sent_to_it(dashboard: Dashboard, tmp_path: Path):
    from websockets.sync.client import connect

    marker = tmp_path / "executed"
    status, _, html = request(
        f"{dashboard.viewer_base_url}/voila/render/portfolio.ipynb", token=dashboard.viewer_token
    )
    assert status == 200
    kernel = _kernel_id(html)
    base = dashboard.viewer_base_url.replace("http://", "ws://")
    session = uuid.uuid4().hex
    with connect(
        f"{base}/api/kernels/{kernel}/channels?session_id={session}",
        additional_headers={"Authorization": f"token {dashboard.viewer_token}"},
        open_timeout=60,
    ) as socket:
        code = f"open({str(marker)!r}, 'w').write('ran')"
        execute = _message("execute_request", {"code": code, "silent": False}, session)
        socket.send(json.dumps(execute))
        probe = _message("kernel_info_request", {}, session)
        socket.send(json.dumps(probe))
        seen = []
        while True:  # bounded by the socket's receive timeout
            reply = json.loads(socket.recv(timeout=120))
            seen.append((reply["msg_type"], reply["parent_header"].get("msg_id")))
            if (
                reply["parent_header"].get("msg_id") == probe["header"]["msg_id"]
                and reply["msg_type"] == "kernel_info_reply"
            ):
                break
    # The shell channel answers in order: the execute request never reached the kernel.
    assert not any(parent == execute["header"]["msg_id"] for _, parent in seen), seen
    assert not marker.exists()


def _viewer_cli(dashboard: Dashboard, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantstrip", "viewer", *args],
        env=dashboard.env,
        cwd=dashboard.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _viewer_kernels(dashboard: Dashboard) -> set[int]:
    """Kernels the viewer server started: forked by its warm starter, or (started cold) its
    own children. Found by ancestry, as /proc's environ of a forked kernel is its starter's."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" in " ".join(process.info["cmdline"] or []) and any(
                "-m voila" in " ".join(parent.cmdline()) for parent in process.parents()
            ):
                found.add(process.pid)
        except psutil.Error:
            continue
    return found


def _sign_in(url: str, token: str) -> tuple[int, str]:
    """GET `url` with the token in the URL, as a shared link does; returns the status and the
    session cookie the server set."""
    with urllib.request.urlopen(f"{url}?token={token}", timeout=120) as response:
        cookies = [c.split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or []]
        return int(response.status), "; ".join(cookies)


def test_a_revoked_token_and_its_sessions_stop_working_at_once(
    dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every request is checked against the vault: no restart is needed (this server is not
    watched by `quantstrip up`)."""
    from quantstrip.dashboard.viewer_server import start_viewer

    monkeypatch.setenv("QUANTSTRIP_WORKSPACE", str(dashboard.root))
    monkeypatch.setenv("QUANTSTRIP_HOME", str(dashboard.root / "var"))
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    # Its log is this test's, outside the shared workspace's data directory (the security
    # tests check that every file there is private; this file is not the product's).
    server = start_viewer(port=0, log_path=tmp_path / "viewer-bob.out")
    try:
        added = _viewer_cli(dashboard, "add", "bob")
        token = re.search(r"token (\S+)", added.stdout).group(1)  # type: ignore[union-attr]
        url = f"{server.base_url}/voila/render/notifications.ipynb"
        status, cookie = _sign_in(url, token)
        assert status == 200 and cookie
        assert request(url, cookie=cookie)[0] == 200  # the session cookie alone works
        assert _viewer_cli(dashboard, "revoke", "bob").returncode == 0
        assert not answers(request(url, token=token)[0])
        assert not answers(request(url, cookie=cookie)[0])
        # Adding bob again gives a new token: the old one and its session stay shut out.
        _viewer_cli(dashboard, "add", "bob")
        assert not answers(request(url, token=token)[0])
        assert not answers(request(url, cookie=cookie)[0])
    finally:
        _viewer_cli(dashboard, "revoke", "bob")
        server.stop()


def serves_viewer(dashboard: Dashboard) -> bool:
    """Whether the viewer server (maybe being restarted by `up`) serves the default viewer."""
    try:
        url = f"{dashboard.viewer_base_url}/voila/render/home.ipynb"
        return request(url, token=dashboard.viewer_token)[0] == 200
    except OSError:
        return False


@pytest.mark.browser
def test_up_closes_a_revoked_viewers_open_pages(page, dashboard: Dashboard) -> None:  # type: ignore[no-untyped-def]
    _wait(lambda: serves_viewer(dashboard), 180, "the viewer server")
    added = _viewer_cli(dashboard, "add", "alice")
    assert added.returncode == 0, added.stderr
    token = re.search(r"token (\S+)", added.stdout).group(1)  # type: ignore[union-attr]
    # A new viewer signs in at once, without a restart.
    open_viewer_page(page, dashboard, "portfolio", ".qs-stats table", token=token)
    kernels_before = _viewer_kernels(dashboard)
    assert kernels_before
    revoked = _viewer_cli(dashboard, "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert "alice                    revoked" in _viewer_cli(dashboard, "list").stdout
    page_url = f"{dashboard.viewer_base_url}/voila/render/portfolio.ipynb"

    def refused(**auth: str) -> bool:
        try:
            return not answers(request(page_url, **auth)[0])
        except OSError:  # the server is being restarted: nothing answers either
            return True

    assert refused(token=token)
    # `up` restarts the viewer server: the pages she had open lose their kernels.
    _wait(
        lambda: "viewer alice revoked" in (dashboard.root / "up.log").read_text(),
        120,
        "quantstrip up to restart the viewer server",
    )
    _wait(lambda: not (kernels_before & _viewer_kernels(dashboard)), 120, "open pages to close")
    assert refused(token=token)

    # The other viewer keeps access on the same address.
    _wait(lambda: serves_viewer(dashboard), 180, "the default viewer to be served again")
