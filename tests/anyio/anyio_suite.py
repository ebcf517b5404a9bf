"""AnyIO's own test suite, run on shardio: the acceptance test of the backend.

``python -m tests.anyio.anyio_suite`` fetches the sdist of the pinned AnyIO
(by version, checked against its sha256) into a cache directory, unpacks its
``tests/`` next to a pytest configuration of our own, adds ``"shardio"`` to
the backends its ``conftest.py`` parametrizes ``anyio_backend`` with, and runs
the suite twice: on AnyIO's Trio backend and on shardio. It then compares the
two runs test by test: every test that passes on Trio must pass on shardio,
except the tests listed in ``suite_exceptions.txt`` (one test id a line, with
the reason). It prints the counts side by side and exits non-zero on any
other difference. ``tests/anyio/test_anyio_suite.py`` runs it in the project's
test suite.

Only the backend-generic part of the suite runs: the tests parametrized by
``anyio_backend``, on the two backends compared (the tests that take no
backend, and the asyncio-only ones, say nothing about shardio). Nothing of
AnyIO is committed here: the cache holds the sdist, and the unpacked copy is
made anew each run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

#: The AnyIO release the backend is written for and tested against; pinned
#: in pyproject.toml's extras too.
ANYIO_VERSION = "4.16.0"
ANYIO_SDIST_SHA256 = "59bb03251907983d1603d27c3087ddb1e93299ea2163adcdba37899a4fb12ffb"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXCEPTIONS_FILE = HERE / "suite_exceptions.txt"
BACKENDS = ("trio", "shardio")

# What the copy's conftest.py gains: shardio among the backends, right before
# the fixture that parametrizes ``anyio_backend`` with the list; the ids of the
# two backends compared become "@trio" and "@shardio", so that a test id says
# which of its parameters is the backend (a test may have another parameter
# named after a backend, such as a blocking portal's); and a filter that keeps
# the tests of one backend (SHARDIO_SUITE_BACKEND) per run.
FIXTURE_LINE = "@pytest.fixture(params=backend_params)\n"
BACKEND_LIST_ADDITION = """\
import shardio  # installs the import hook AnyIO finds the backend by

backend_params = [
    pytest.param(*p.values, marks=p.marks, id=f"@{p.values[0]}")
    if p.values[0] == "trio" else p
    for p in backend_params
]
backend_params.append(pytest.param("shardio", id="@shardio"))


"""
CONFTEST_ADDITION = """

# --- added by shardio's tests/anyio/anyio_suite.py ---
import os as _os

def pytest_collection_modifyitems(config, items):
    wanted = _os.environ["SHARDIO_SUITE_BACKEND"]
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("anyio_backend") if callspec else None
        if isinstance(backend, tuple):
            backend = backend[0]
        (keep if backend == wanted else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
"""

PYTEST_INI = """\
[pytest]
addopts = -rfE --tb=short -p anyio -p pytest_mock -p timeout -p no:asyncio -p no:trio
          -p no:shardio -p no:cacheprovider
testpaths = tests
anyio_mode = auto
timeout = 60
xfail_strict = true
filterwarnings =
    error
markers =
    network: marks tests as requiring Internet access
"""


def cache_dir() -> Path:
    return Path(os.environ.get("SHARDIO_ANYIO_SUITE_CACHE", REPO / "build" / "anyio-suite"))


def fetch_sdist() -> Path:
    """The pinned sdist, from the cache or PyPI, its checksum verified."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    sdist = directory / f"anyio-{ANYIO_VERSION}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--dest",
                str(directory),
                f"anyio=={ANYIO_VERSION}",
            ],
            check=True,
        )
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != ANYIO_SDIST_SHA256:
        sdist.unlink()
        raise SystemExit(
            f"{sdist.name} has sha256 {digest}, not the pinned {ANYIO_SDIST_SHA256}; "
            "the file was removed, run again to fetch it anew"
        )
    return sdist


def prepare(sdist: Path) -> Path:
    """A fresh copy of AnyIO's tests with shardio added; returns its root."""
    work = cache_dir() / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prefix = f"anyio-{ANYIO_VERSION}/tests/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for member in members:
            member.name = "tests/" + member.name[len(prefix) :]
        tar.extractall(work, members=members, filter="data")
    conftest = work / "tests" / "conftest.py"
    text = conftest.read_text()
    if text.count(FIXTURE_LINE) != 1:
        raise SystemExit(f"{conftest}: cannot find where to add shardio ({FIXTURE_LINE!r})")
    text = text.replace(FIXTURE_LINE, BACKEND_LIST_ADDITION + FIXTURE_LINE)
    conftest.write_text(text + CONFTEST_ADDITION)
    (work / "pytest.ini").write_text(PYTEST_INI)
    return work


def run_backend(work: Path, backend: str, extra: Sequence[str]) -> dict[str, str]:
    """Run the suite on one backend; the outcome of each test, by id."""
    report = work / f"junit-{backend}.xml"
    env = dict(os.environ, SHARDIO_SUITE_BACKEND=backend, PYTHONPATH=str(REPO))
    env.pop("PYTEST_ADDOPTS", None)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *extra],
        cwd=work,
        env=env,
        check=False,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            outcomes[test_id] = "failed"
        elif "skipped" in kinds:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes


def generic(test_id: str) -> bool:
    """Whether ``test_id`` is one of a test run on every backend (not one
    parametrized by hand for Trio alone)."""
    return "[@trio" in test_id or "-@trio" in test_id


def as_backend(test_id: str, backend: str) -> str:
    """``test_id`` of a generic trio test, with its backend parameter changed."""
    head, _, params = test_id.partition("[")
    parts = params[:-1].split("-")
    return head + "[" + "-".join(f"@{backend}" if p == "@trio" else p for p in parts) + "]"


def read_exceptions() -> dict[str, str]:
    exceptions: dict[str, str] = {}
    for line in EXCEPTIONS_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        exceptions[test_id] = reason.strip()
    return exceptions


def counts(outcomes: dict[str, str]) -> dict[str, int]:
    return {
        kind: sum(v == kind for v in outcomes.values()) for kind in ("passed", "failed", "skipped")
    }


def compare(trio: dict[str, str], shardio: dict[str, str], exceptions: dict[str, str]) -> list[str]:
    """The differences that fail the acceptance test, one line each."""
    problems = []
    for test_id, result in sorted(trio.items()):
        if result != "passed" or not generic(test_id):
            continue
        ours = as_backend(test_id, "shardio")
        got = shardio.get(ours, "missing")
        if got != "passed" and ours not in exceptions:
            problems.append(f"{ours}: {got} on shardio, passed on trio")
    for test_id in sorted(exceptions):
        if shardio.get(test_id) == "passed":
            problems.append(
                f"{test_id}: listed as an exception but passes: remove it from the list"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (e.g. -k sockets)")
    args = parser.parse_args(argv)
    installed = importlib.metadata.version("anyio")
    if installed != ANYIO_VERSION:
        raise SystemExit(
            f"anyio {installed} is installed, the suite is AnyIO {ANYIO_VERSION}'s: "
            f"pip install anyio=={ANYIO_VERSION} (pyproject.toml's test extra pins it)"
        )
    work = prepare(fetch_sdist())
    results = {backend: run_backend(work, backend, args.pytest_args) for backend in BACKENDS}
    trio_generic = {k: v for k, v in results["trio"].items() if generic(k)}
    print(f"\nAnyIO {ANYIO_VERSION} test suite, backend-generic tests:")
    print(f"{'':10}{'passed':>8}{'failed':>8}{'skipped':>8}")
    for backend, outcomes in (("trio", trio_generic), ("shardio", results["shardio"])):
        c = counts(outcomes)
        print(f"{backend:10}{c['passed']:>8}{c['failed']:>8}{c['skipped']:>8}")
    print(f"({len(results['trio']) - len(trio_generic)} tests written for Trio alone not compared)")
    exceptions = read_exceptions()
    for test_id, reason in exceptions.items():
        print(f"exception: {test_id} ({results['shardio'].get(test_id, 'missing')}): {reason}")
    problems = compare(results["trio"], results["shardio"], exceptions)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} unexpected difference(s) between trio and shardio")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
