"""Headless Chromium over the DevTools protocol (standard library only): PDFs and page checks.

Optional: everything here needs a ``chromium`` (or ``chromium-browser`` / ``google-chrome``)
executable; :func:`find_chromium` says whether there is one. The browser is started with
``--remote-debugging-pipe`` (commands on file descriptor 3, replies on 4, NUL-separated JSON),
so no port is opened and nothing is downloaded.

* :func:`print_pdf` prints report pages to PDF (A4, the pages' print CSS), as an evaluator
  would from the browser's print dialog.
* :class:`Browser` loads pages and reports console messages, exceptions, failed requests and
  broken images, and takes screenshots (the browser test uses it).
"""
from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalkit.errors import InputError

__all__ = ["find_chromium", "Browser", "print_pdf", "PageReport"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium executable (``EVALKIT_CHROMIUM`` first), or None."""
    env = os.environ.get("EVALKIT_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for n in _NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


class PageReport(dict):
    """What loading a page showed: ``console`` (errors and warnings), ``exceptions``,
    ``failed`` (requests that failed), ``broken_images`` (img elements that did not load)."""


class Browser:
    """A headless Chromium driven through ``--remote-debugging-pipe`` (use as a context manager)."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise InputError("Chromium is not installed (looked for chromium, chromium-browser, google-chrome)")
        self._profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
        r_cmd, w_cmd = os.pipe()  # we write commands, Chromium reads fd 3
        r_evt, w_evt = os.pipe()  # Chromium writes fd 4, we read
        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--disable-background-networking", "--mute-audio",
                "--hide-scrollbars", f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
                "--allow-file-access-from-files"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)

        # the shell puts our pipe ends on the descriptors 3 and 4 the protocol expects, through two
        # spare descriptors so that no end is overwritten whichever numbers the pipes got (bash:
        # descriptors above 9)
        t_r, t_w = max(r_cmd, w_evt) + 1, max(r_cmd, w_evt) + 2
        redir = f"{t_r}<&{r_cmd} {t_w}>&{w_evt} 3<&{t_r} 4>&{t_w} {t_r}<&- {t_w}>&-"
        cmd = " ".join(shlex.quote(a) for a in args) + " " + redir
        self._proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", "exec " + cmd],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, pass_fds=(r_cmd, w_evt))
        os.close(r_cmd)
        os.close(w_evt)
        self._w = os.fdopen(w_cmd, "wb", buffering=0)
        self._r = os.fdopen(r_evt, "rb", buffering=0)
        self._buf = b""
        self._id = 0
        self._events: list[dict[str, Any]] = []
        self._session: str | None = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    # -- protocol -------------------------------------------------------------------------
    def _read(self, timeout: float) -> dict[str, Any]:
        import select

        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = self._r.read(1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Send one DevTools command and return its result (events that arrive meanwhile are kept)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self._session and not method.startswith("Target."):
            msg["sessionId"] = self._session
        self._w.write(json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self._events.append(m)

    def _wait_event(self, name: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("method") == name for e in self._events):
            self._events.append(self._read(max(end - time.monotonic(), 0.01)))

    # -- pages ------------------------------------------------------------------------------
    def open(self, url: str, timeout: float = 60) -> PageReport:
        """Load ``url`` until its load event; report console errors, exceptions, failed requests
        and images that did not load."""
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired", timeout)
        end = time.monotonic() + timeout  # a late event of the previous page must not count
        while not self.evaluate(f"document.readyState === 'complete' && location.href === {json.dumps(url)}"):
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)
        broken = self.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                               ".map(i => (i.getAttribute('src') || '').slice(0, 80))")
        rep = PageReport(console=[], exceptions=[], failed=[], broken_images=broken or [])
        for e in self._events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                rep["console"].append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error",):
                ent = p["entry"]
                rep["console"].append(f"{ent.get('source')}: {ent.get('text')} {ent.get('url', '')}")
            elif m == "Runtime.exceptionThrown":
                rep["exceptions"].append(p["exceptionDetails"].get("text", ""))
            elif m == "Network.loadingFailed":
                rep["failed"].append(f"{p.get('errorText')} {p.get('requestId')}")
        return rep

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        return r.get("result", {}).get("value")

    def screenshot(self, path: str | Path, full_page: bool = True, clip: dict[str, float] | None = None) -> Path:
        """Save a PNG of the page (the whole page, or ``clip`` = x, y, width, height in CSS pixels)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        elif full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 16000), "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        p = Path(path)
        p.write_bytes(base64.b64decode(data))
        return p

    def pdf(self, path: str | Path) -> Path:
        """Print the loaded page to PDF (A4, background graphics, the page's print CSS)."""
        data = self.call("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True,
                                             "paperWidth": 8.27, "paperHeight": 11.69}, timeout=120)["data"]
        p = Path(path)
        p.write_bytes(base64.b64decode(data))
        return p

    def close(self) -> None:
        """Close the browser and remove its temporary profile."""
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def print_pdf(pages: Iterable[str | Path], out_dir: str | Path | None = None) -> list[Path]:
    """Print HTML report pages to PDF with headless Chromium (``x.html`` -> ``x.pdf`` beside it, or
    into ``out_dir``). Raises :class:`~evalkit.errors.InputError` when there is no Chromium."""
    done = []
    with Browser() as b:
        for page in pages:
            src = Path(page).resolve()
            dest = (Path(out_dir) if out_dir else src.parent) / (src.stem + ".pdf")
            dest.parent.mkdir(parents=True, exist_ok=True)
            b.open(src.as_uri())
            done.append(b.pdf(dest))
    return done

