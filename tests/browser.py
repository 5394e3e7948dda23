"""A headless Chromium for the tests, driven over the DevTools protocol on a pipe.

``chromium()`` finds Debian's ``/usr/bin/chromium`` (package ``chromium``); when it is
absent the test is skipped, except under ``CI=true`` as root, where it is installed with
apt-get first (about 20 s with a warm package index, bounded by timeouts).  ``Browser``
starts it with ``--remote-debugging-pipe`` (commands on fd 3, answers on fd 4, each a JSON
object ended by NUL), so no port, websocket library or driver is needed.

``shown_frame_text`` opens a ``snakemake --report`` page the way a reader does: it clicks
a category in the menu, then the eye button of the entry with the given label, and reads
the visible text (``innerText``) of the frame in which the report shows that HTML result.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "chromium"
NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


def _find() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def chromium() -> str:
    """Path of a Chromium; installs Debian's under CI=true as root, else skips."""
    found = _find()
    if found:
        return found
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.skip(
            f"no headless browser ({', '.join(NAMES)}) on PATH and CI is not true: "
            f"install Debian's with `apt-get install -y {PACKAGE}` or set CI=true"
        )
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("installing Chromium under CI needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE],
        check=True,
        timeout=600,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = _find()
    if found is None:
        raise AssertionError(f"apt-get installed {PACKAGE} but none of {NAMES} is on PATH")
    return found


class Browser:
    """One headless Chromium; ``call`` sends a DevTools command and returns its result."""

    def __init__(self, exe: str, timeout: float = 30.0):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends at fds >= 10, so that moving them onto 3 and 4 clobbers neither
        fds = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        args = [*FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{fds[0]} 4>&{fds[1]}', "bash", exe, *args],
            pass_fds=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes share the group: stopped together
        )
        for fd in fds:
            os.close(fd)
        self._buf = b""
        self._id = 0

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        # Chromium's helper processes (zygote, renderers, crashpad) outlive a terminated
        # browser process for a moment and keep writing into the profile: stop the whole
        # process group, then remove the profile (retrying while the last writes land)
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._signal_group(signal.SIGKILL)
        os.close(self._to_browser)
        os.close(self._from_browser)
        for _ in range(20):
            try:
                shutil.rmtree(self._profile)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(self._profile)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._next(deadline, method)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _next(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} in {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited ({self.proc.poll()}) during {method}")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def evaluate(self, session: str, expression: str, context: int | None = None) -> Any:
        """Value of a JavaScript expression (promises awaited); a thrown error raises."""
        params: dict[str, Any] = {"returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        r = self.call("Runtime.evaluate", session, expression=expression, **params)
        if "exceptionDetails" in r:
            details = r["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description", details))
        return r["result"].get("value")

    def open(self, url: str) -> str:
        """A new page at ``url``; returns its session id."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        deadline = time.monotonic() + self.timeout
        while True:
            try:  # raises while the page replaces about:blank
                state = self.evaluate(session, "[location.href, document.readyState]")
            except RuntimeError:
                state = None
            if state == [url, "complete"]:
                return session
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load in {self.timeout} s (last: {state})")
            time.sleep(0.05)


# Clicks like a reader: the category in the menu, then the eye button of the entry whose
# row shows the label; waits (polling, up to 15 s) for each step to render.
_OPEN_ENTRY = """
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) {
      const found = find();
      if (found) return found;
      await sleep(50);
    }
    throw new Error("report page: no " + what);
  };
  const links = () => [...document.querySelectorAll("nav a")];
  const cat = await until(
    () => links().find((a) => a.textContent.trim() === CATEGORY), "category " + CATEGORY);
  cat.click();
  const row = await until(
    () => [...document.querySelectorAll("nav tbody tr")].find(
      (r) => r.textContent.includes(LABEL)), "entry " + LABEL);
  row.querySelector("a[iconname=eye]").click();
  const frame = await until(() => document.querySelector("iframe"), "frame");
  const box = frame.getBoundingClientRect();
  return {width: box.width, height: box.height, top: box.top, left: box.left,
          viewport: [window.innerWidth, window.innerHeight]};
})()
"""


def shown_frame_text(exe: str, report: Path, category: str, label: str) -> dict[str, Any]:
    """Open ``report`` in Chromium, show the entry ``label`` of ``category``, and return
    the frame's box in the page and ``text``: the innerText of each table in the frame."""
    with Browser(exe) as b:
        session = b.open(report.resolve().as_uri())
        script = _OPEN_ENTRY.replace("CATEGORY", json.dumps(category)).replace(
            "LABEL", json.dumps(label)
        )
        shown = b.evaluate(session, script)
        deadline = time.monotonic() + 15
        while True:
            tree = b.call("Page.getFrameTree", session)["frameTree"]
            children = tree.get("childFrames", [])
            if children:
                frame = children[0]["frame"]["id"]
                world = b.call("Page.createIsolatedWorld", session, frameId=frame)
                tables = b.evaluate(
                    session,
                    "document.readyState === 'complete' ? "
                    "[...document.querySelectorAll('table')].map((t) => t.innerText) : null",
                    world["executionContextId"],
                )
                if tables:
                    return {**shown, "tables": tables}
            if time.monotonic() > deadline:
                raise AssertionError(f"the report shows no table in a frame for {label!r}")
            time.sleep(0.1)
