"""Check that the code shown in the docs is the code that runs, with the output shown.

Run from the repository root:  .venv/bin/python docs/check_examples.py

In README.md and docs/**/*.md, a fenced block whose info string is
``python file=PATH`` must be the exact text of PATH (relative to the Markdown
file). A following block ``text output=PATH`` must be exactly what running
PATH prints. A file named ``test_*.py`` is run with pytest instead and must pass.

An output block marked ``text output=PATH sample`` shows what PATH printed once
(measurements, which differ from run to run): PATH must still run without an
error, but its output is not compared.

An output block marked ``root`` (``text output=PATH root``, with or without
``sample``) is a program that makes a network namespace and a TAP device:
run by hand without root's powers or /dev/net/tun it is skipped with the
reason; under CI (``SHARDIO_REQUIRE_OUTSIDE_PROGRAMS``) it always runs.

Examples run as a user would run them, with stdout a pipe and block-buffered
(``PYTHONUNBUFFERED`` is removed from their environment): a multi-shard example
whose shards print without flushing would come out in the wrong order, and
must fail here rather than on the reader's machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"^```(\w+) (file|output)=(\S+)((?: sample| root)*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL
)
# The TAP tests' own check of root's powers, for the blocks marked root.
sys.path.insert(0, str(ROOT))
from tests.native._netns import missing_privileges  # noqa: E402

ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def run(path: Path) -> subprocess.CompletedProcess[str]:
    if path.name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    else:
        command = [sys.executable, str(path)]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENVIRONMENT,
        # A shell may start us with SIGINT ignored; the Ctrl-C example needs
        # Python's default handler, which Python installs only over SIG_DFL.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def check(markdown: Path) -> list[str]:
    problems = []
    text = markdown.read_text()
    for match in FENCE.finditer(text):
        _, kind, name, flags, body = match.groups()
        sample = "sample" in flags.split()
        path = (markdown.parent / name).resolve()
        where = f"{markdown.relative_to(ROOT)}: {name}"
        if not path.is_file():
            problems.append(f"{where}: no such file")
            continue
        if "root" in flags.split() and not os.environ.get("SHARDIO_REQUIRE_OUTSIDE_PROGRAMS"):
            reason = missing_privileges()
            if reason is not None:
                print(f"{where}: skipped: {reason}")
                continue
        if kind == "file":
            if body != path.read_text():
                problems.append(f"{where}: the block differs from the file")
            if path.name.startswith("test_"):
                result = run(path)
                if result.returncode != 0:
                    problems.append(f"{where}: pytest failed\n{result.stdout}{result.stderr}")
        else:
            result = run(path)
            if result.returncode != 0 or result.stderr:
                problems.append(f"{where}: exit status {result.returncode}\n{result.stderr}")
            elif not sample and result.stdout != body:
                problems.append(
                    f"{where}: printed\n{result.stdout}--- but the docs show\n{body}---"
                )
    return problems


def main() -> int:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    pages = [page for page in pages if page.is_file()]
    problems = [problem for page in pages for problem in check(page)]
    blocks = sum(len(FENCE.findall(page.read_text())) for page in pages)
    for problem in problems:
        print(problem, end="\n\n")
    print(f"{blocks} blocks checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
