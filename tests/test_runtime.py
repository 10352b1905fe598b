"""The runtime is a library: it runs without the web layer."""

from __future__ import annotations

import subprocess
import sys


def test_the_runtime_imports_no_http_framework() -> None:
    check = (
        "import sys, eventplan.runtime, eventplan.project, eventplan.store.forward\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn'))\n"
        "print(web)\n"
        "sys.exit(1 if web else 0)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
