"""Child processes the demo, the benchmark and the tests start: stopping them politely."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; nothing if already gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
