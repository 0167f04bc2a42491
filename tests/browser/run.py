#!/usr/bin/env python3
"""The example server in a real headless Chromium (Debian's chromium and chromium-driver),
and other people's clients against it (tests/interop/clients.py).

1. Swagger UI at /docs: "Authorize" logs in with the password flow (Swagger UI sends
   `Authorization: Basic Og==` with it: no browser login prompt may open), then "Try it out"
   on GET /users/me answers 200 with the username, and POST /items, whose scope the user
   lacks, answers 403. The page breaks no content security policy rule.
2. CORS: a page served from another loopback port logs in and calls /users/me with fetch when
   its origin is in CORS_ALLOWED_ORIGINS, and is blocked when it is not.
3. External sign-in: the sign-in page at / has a button for the provider (a TestIssuer, the
   `test_issuer` example beside the server binary); clicking it goes through the provider's
   scripted login and the callback back to the page, whose script exchanges the one-time code
   with its PKCE verifier and reads /users/me (200). The code leaves the address bar, and the
   page breaks no content security policy rule.

Usage: run.py <server binary> [artefact dir]. Drives chromedriver over the W3C WebDriver
protocol with the standard library only. On failure a screenshot, the page source and the
server log go to the artefact dir (default target/browser-artifacts).
"""

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SERVER, ARTEFACTS = os.path.abspath(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "target/browser-artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout=20.0, every=0.1):
    """`check()` once it is truthy; an AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Server:
    """The example server on a free loopback port, in memory, with registration on."""

    def __init__(self, port=None, **env):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp()
        self.log = os.path.join(self.dir, "server.log")
        variables = dict(os.environ, BIND=f"127.0.0.1:{self.port}", DATABASE_URL="memory",
                         AUTH_REGISTRATION="1", AUTH_ISSUER=self.base, RUST_LOG="info", **env)
        self.process = subprocess.Popen([SERVER], cwd=self.dir, env=variables,
                                        stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_until("the server", lambda: "listening on" in open(self.log).read())

    def call(self, method, path, body=None, form=None):
        data, headers = None, {}
        if body is not None:
            data, headers["content-type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def register(self, username):
        status, body = self.call("POST", "/auth/register",
                                 body={"username": username, "password": PASSWORD})
        assert status == 201, (status, body)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


class Browser:
    """A W3C WebDriver session on headless Chromium."""

    def __init__(self):
        self.port = free_port()
        self.profile = tempfile.mkdtemp()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("chromedriver", self._ready)
        # Without the background-networking flags Chromium keeps calling Google's hosts,
        # which a closed network refuses.
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                f"--user-data-dir={self.profile}", "--window-size=1280,2000"]
        capabilities = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                        "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        session = self._send("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = session["sessionId"]

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=2) as r:
                return json.load(r)["value"]["ready"]
        except OSError:
            return False

    def _send(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                         method=method,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as err:
            raise AssertionError(f"webdriver {method} {path}: {err.read().decode()}") from None

    def command(self, method, path, body=None):
        return self._send(method, f"/session/{self.session}{path}", body)

    def open(self, url):
        self.command("POST", "/url", {"url": url})

    def find(self, css, timeout=20.0):
        def found():
            elements = self.command("POST", "/elements", {"using": "css selector", "value": css})
            return elements[0] if elements else None
        element = wait_until(f"an element {css!r}", found, timeout)
        return next(iter(element.values()))

    def click(self, css):
        # Through the page's own click(): Swagger UI hides some inputs behind styled labels.
        self.script("document.querySelector(arguments[0]).scrollIntoView();"
                    "document.querySelector(arguments[0]).click();", css, wait_for=css)

    def type(self, css, text):
        self.command("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css):
        return self.command("GET", f"/element/{self.find(css)}/text")

    def script(self, source, *args, wait_for=None):
        if wait_for:
            self.find(wait_for)
        return self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    def console(self):
        try:
            return self.command("POST", "/se/log", {"type": "browser"})
        except AssertionError:
            return []

    def save(self, name):
        os.makedirs(ARTEFACTS, exist_ok=True)
        try:
            png = base64.b64decode(self.command("GET", "/screenshot"))
            open(os.path.join(ARTEFACTS, f"{name}.png"), "wb").write(png)
            open(os.path.join(ARTEFACTS, f"{name}.html"), "w").write(
                self.command("GET", "/source"))
        except AssertionError as err:
            print(f"could not save {name}: {err}")

    def quit(self):
        try:
            self._send("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)
            shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def log_kept_on_failure(server, name):
    """Stops `server` afterwards; on a failure, first copies its log to the artefacts."""
    try:
        yield server
    except BaseException:
        os.makedirs(ARTEFACTS, exist_ok=True)
        shutil.copy(server.log, os.path.join(ARTEFACTS, f"{name}-server.log"))
        raise
    finally:
        server.stop()


def swagger_response(browser, operation):
    """Expands `operation`, tries it out, and returns (status, body text) of the answer."""
    block = f"#{operation}"
    browser.click(f"{block} .opblock-summary-control")
    # "Try it out" is on from the start (tryItOutEnabled): the operation opens ready to run.
    browser.click(f"{block} .execute")
    answer = f"{block} .live-responses-table tbody tr.response"
    status = browser.text(f"{answer} td.response-col_status").strip()
    body = browser.text(f"{answer} td.response-col_description")
    return status, body


def swagger_ui(browser):
    with log_kept_on_failure(Server(), "swagger") as server:
        server.register("alice")
        browser.open(f"{server.base}/docs/")
        browser.click(".auth-wrapper .authorize")
        browser.type("#oauth_username", "alice")
        browser.type("#oauth_password", PASSWORD)
        # The scope registered users have; items:write would be refused (invalid_scope).
        browser.click('input[data-value="items:read"]')
        browser.click('button[aria-label="Apply given OAuth2 credentials"]')
        # Logged in: the dialog offers to log out, and shows no error.
        wait_until("the login", lambda: browser.script(
            "return [...document.querySelectorAll('.auth-btn-wrapper button')]"
            ".some(b => b.textContent.trim() === 'Logout')"))
        errors = browser.script(
            "return [...document.querySelectorAll('.auth-container .errors')]"
            ".map(e => e.textContent)")
        assert not errors, f"the login showed errors: {errors}"
        browser.click(".btn-done")

        status, body = swagger_response(browser, "operations-api-me")
        assert status == "200", (status, body)
        assert '"username": "alice"' in body, body
        status, body = swagger_response(browser, "operations-api-create_item")
        assert status == "403", (status, body)
        assert "insufficient_scope" in body, body

        console = browser.console()
        violations = csp_violations(browser)
        assert not violations, f"the page broke its content security policy: {violations}"
        login = open(server.log).read()
        assert "invalid_client" not in login, "Swagger UI's Basic credentials were refused"
        print("swagger ui: authorized as alice; GET /users/me 200; POST /items 403; "
              f"{len(console)} console messages, none about the content security policy")


PAGE = """<!doctype html><meta charset="utf-8"><title>pending</title>
<script>
(async () => {
  const api = %s;
  try {
    const login = await fetch(api + "/auth/token", {method: "POST",
      headers: {"content-type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams({grant_type: "password", username: "bob", password: %s})});
    const token = (await login.json()).access_token;
    const me = await fetch(api + "/users/me", {headers: {authorization: "Bearer " + token}});
    document.title = "me " + me.status + " " + (await me.json()).username;
  } catch (error) {
    document.title = "blocked " + error.name;
  }
})();
</script>"""


def serve_page(html):
    """`html` at / of a new loopback HTTP server; returns its origin and the server."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{page.server_address[1]}", page


def settled(browser):
    """The page's title once its script has finished."""
    title = browser.command("GET", "/title")
    return title if title != "pending" else None


def cors(browser):
    api_port = free_port()
    html = PAGE % (json.dumps(f"http://127.0.0.1:{api_port}"), json.dumps(PASSWORD))
    allowed, allowed_page = serve_page(html)
    other, other_page = serve_page(html)
    # Only the first page's origin is allowed.
    server = Server(port=api_port, CORS_ALLOWED_ORIGINS=allowed)
    try:
        with log_kept_on_failure(server, "cors"):
            server.register("bob")
            browser.open(allowed + "/")
            title = wait_until("the allowed page", lambda: settled(browser))
            assert title == "me 200 bob", title
            browser.open(other + "/")
            title = wait_until("the other page", lambda: settled(browser))
            assert title == "blocked TypeError", title
            print(f"cors: {allowed} read /users/me; {other} was blocked")
    finally:
        allowed_page.shutdown()
        other_page.shutdown()


def csp_violations(browser):
    return [entry["message"] for entry in browser.console()
            if "Content Security Policy" in entry.get("message", "")]


def external_sign_in(browser):
    issuer_binary = os.path.join(os.path.dirname(SERVER), "test_issuer")
    provider = subprocess.Popen([issuer_binary, "Ada Lovelace", "ada@example.com"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        settings = json.loads(provider.stdout.readline())
        server = Server(AUTH_OIDC_TEST_ISSUER=settings["issuer"],
                        AUTH_OIDC_TEST_CLIENT_ID=settings["client_id"],
                        AUTH_OIDC_TEST_CLIENT_SECRET=settings["client_secret"],
                        AUTH_EXTERNAL_SIGNUP="open")
        with log_kept_on_failure(server, "external"):
            browser.open(server.base + "/")
            browser.click('button[data-provider="test"]')
            who = wait_until("the signed-in page", lambda: browser.script(
                "const s = document.getElementById('status');"
                "return s && s.dataset.username;"))
            status = browser.text("#status")
            assert who == "ada-lovelace", (who, status)
            assert status.endswith("(/users/me 200)"), status
            url = browser.command("GET", "/url")
            assert url == server.base + "/", f"the code stayed in the address bar: {url}"
            violations = csp_violations(browser)
            assert not violations, f"the page broke its content security policy: {violations}"
            log = open(server.log).read()
            assert "external sign-in" in log, "the server logged no external sign-in"
            print(f"external sign-in: {status}; back at {url}")
    finally:
        provider.stdin.close()
        provider.wait(timeout=30)


def clients(_browser):
    """authlib, PyJWT and openapi-spec-validator from the base URL alone (tests/interop)."""
    server = Server(AUTH_BOOTSTRAP_ADMIN=f"admin:{PASSWORD}")
    with log_kept_on_failure(server, "clients"):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop",
                              "clients.py")
        subprocess.run([sys.executable, script, server.base, "admin", PASSWORD], check=True,
                       timeout=120)


def main():
    browser = Browser()
    failed = False
    try:
        for test in (swagger_ui, cors, external_sign_in, clients):
            try:
                test(browser)
            except BaseException as err:
                failed = True
                browser.save(test.__name__)
                print(f"{test.__name__}: FAILED: {err!r}; artefacts in {ARTEFACTS}")
    finally:
        browser.quit()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
