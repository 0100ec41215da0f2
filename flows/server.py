"""Prefect's temporary server, started early: while ``segment run`` imports Prefect and checks
its input, instead of after.

Without an API URL, Prefect starts a temporary API server (a ``uvicorn`` subprocess) the first
time a flow needs it, and waits for it: most of a small run's time. Here the same server is
started before Prefect is even imported, and ``PREFECT_API_URL`` names it, so it boots on one
core while this process imports Prefect, pandas and scikit-learn and checks the input on the
other; Prefect then talks to it as to any server and never imports its own server code. It is
stopped when the process exits, like Prefect's own, and unlike Prefect's own it also dies when
this process is killed (SIGKILL, or any signal that ends it without running its exit
handlers): on Linux the kernel sends it SIGKILL when its parent dies (``PR_SET_PDEATHSIG``).

Only when nothing else names an API: not the environment, and no Prefect settings file this
process reads (a profile, ``prefect.toml``, ``.env``, ``pyproject.toml``) mentions one;
otherwise Prefect decides as usual. And only when ``segment server start`` runs no background
server in this ``PREFECT_HOME`` (``flows/background_server.py``): a run uses that one.

Library internals, kept because Prefect has no public API to start its temporary server
without waiting for it: the command and environment mirror
``SubprocessASGIServer._run_uvicorn_command``; ``tests/test_server.py`` pins them to the
installed Prefect.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows import background_server as background

log = logging.getLogger(__name__)

API_URL_VARIABLE = "PREFECT_API_URL"
PORT_IN_USE_EXIT = 3  # uvicorn's exit code when it cannot bind its port
# As Prefect's own temporary server: no UI, and marked ephemeral (fewer background services).
SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child asks the kernel for SIGKILL when
    the thread that started it ends (its whole process, when started from the main thread),
    and exits at once if that process is already gone (it died before the request: no signal
    would come). Linux only: None elsewhere, where the child outlives a killed parent."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return die_with_parent


def start_server_process(port: int) -> subprocess.Popen:
    """The temporary server on ``port``, as Prefect starts it, but dying with this process."""
    command = server_command(port)  # this interpreter and fixed arguments, no shell
    return subprocess.Popen(  # noqa: S603
        command, env={**os.environ, **SERVER_ENVIRONMENT}, preexec_fn=dies_with_parent()
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(port: int) -> list[str]:
    """The command Prefect runs for its temporary server (its ``_run_uvicorn_command``)."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise RuntimeError("prefect is not installed")
    app_dir = Path(spec.origin).parent.parent  # as prefect.__module_path__.parent
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(app_dir),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


@dataclass
class EarlyServer:
    """A temporary Prefect API server subprocess on 127.0.0.1, started before Prefect's import."""

    port: int
    process: subprocess.Popen = field(repr=False)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls) -> EarlyServer:
        port = free_port()
        server = cls(port, start_server_process(port))
        atexit.register(server.stop)  # after Prefect's own exit handlers (registered later)
        return server

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def healthy(self) -> bool:
        try:
            # an http:// URL to 127.0.0.1 built here
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait(self, timeout: float) -> None:
        """Until the server answers ``/health``; a new port if its port was taken meanwhile.
        RuntimeError with Prefect's own wording when it does not answer within ``timeout``
        seconds of its start (so the CLI says what to do, as for Prefect's own server)."""
        while time.monotonic() - self.started < timeout:
            code = self.process.poll()
            if code == PORT_IN_USE_EXIT:
                self.port = free_port()
                self.process = start_server_process(self.port)
                continue
            if code is not None:
                raise RuntimeError(
                    "Timed out while attempting to connect to ephemeral Prefect API server. "
                    f"Ephemeral server process exited with code {code}."
                )
            if self.healthy():
                log.debug("temporary server healthy after %.1f s", time.monotonic() - self.started)
                return
            time.sleep(0.1)
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Where Prefect reads settings besides the environment, and text that may name an API there.
API_SETTING = re.compile(
    r"PREFECT_API_URL"  # .env, a profile
    r"|^\s*\[(tool\.prefect\.)?api\]"  # an [api] table (prefect.toml, pyproject.toml)
    r"|(^|[\s.])api\.url\s*="  # a dotted key
    r"|^\s*api\s*=",  # an inline table
    re.MULTILINE,
)
EPHEMERAL_SWITCHES = ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")


def api_named_elsewhere(environ: dict[str, str], cwd: Path) -> bool:
    """True when something besides Prefect's defaults may choose the API or the temporary
    server: ``PREFECT_API_URL`` or an ephemeral-mode switch in the environment, or a settings
    file that mentions an API (conservative: a false alarm only costs the early start)."""
    if environ.get(API_URL_VARIABLE) or any(name in environ for name in EPHEMERAL_SWITCHES):
        return True
    home = Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profiles = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    for path in (profiles, cwd / "prefect.toml", cwd / ".env", cwd / "pyproject.toml"):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        settings = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # no comments
        if API_SETTING.search(settings):
            return True
    return False


def start_early_server() -> EarlyServer | None:
    """Before Prefect's import: start the temporary server and name it in ``PREFECT_API_URL``
    (this process and its children, such as Dask workers, use it), unless something else may
    name an API (:func:`api_named_elsewhere`), ``segment server start`` runs a background
    server in this ``PREFECT_HOME`` (then that one is named, with its UI), or Prefect is
    already imported (then its settings decide, as in a test process)."""
    if "prefect" in sys.modules:  # too late to start early: Prefect's settings are loaded
        return None
    if api_named_elsewhere(dict(os.environ), Path.cwd()):
        return None
    if use_background_server():
        return None
    server = EarlyServer.start()
    os.environ[API_URL_VARIABLE] = server.api_url
    os.environ.setdefault("PREFECT_UI_URL", "")  # no UI on a temporary server: no "View at" link
    return server


def prefer_background_server() -> None:
    """Before Prefect's import, for `segment serve`, `notify` and `backfill` (they need a lasting
    server, never a temporary one): name the background server of ``segment server start`` in
    ``PREFECT_API_URL`` when it runs and nothing else names an API."""
    if "prefect" not in sys.modules and not api_named_elsewhere(dict(os.environ), Path.cwd()):
        use_background_server()


def use_background_server() -> bool:
    """Name the background server of ``segment server start`` in ``PREFECT_API_URL`` and its
    UI in ``PREFECT_UI_URL`` when it runs and answers; say so on standard error when it runs
    but does not answer (this run then starts a temporary server)."""
    home = background.prefect_home()
    server = background.found(home)
    if server is None:
        return False
    if not background.answers(server):
        print(
            f"segment: the background Prefect server (pid {server.pid}) does not answer at "
            f"{server.api_url}; this run uses a temporary server",
            file=sys.stderr,
        )
        return False
    os.environ[API_URL_VARIABLE] = server.api_url
    os.environ.setdefault("PREFECT_UI_URL", server.ui_url)
    return True


def warm_up() -> None:
    """One-time library costs the flow's first tasks would otherwise pay, paid while the
    temporary server boots (the process only waits for it then): pandera registers its
    backends on the first validation (importing hypothesis when it is installed), the
    report's template is compiled, scikit-learn's K-Means inspects its thread pools."""
    import numpy as np
    import pandas as pd
    import pandera.pandas as pa
    from sklearn.cluster import KMeans

    from tasks.reporting.html_report import report_template

    pa.DataFrameSchema({"x": pa.Column(int)}).validate(pd.DataFrame({"x": [1, 2]}))
    report_template()
    KMeans(n_clusters=1, n_init=1, random_state=0).fit(np.zeros((2, 1)))
