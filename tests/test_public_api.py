"""The public API is complete and documented: what the core defines is exported
by a public module, and every public name appears in the reference."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import shardio
import shardio._core
import shardio.abc
import shardio.from_thread
import shardio.lowlevel
import shardio.testing
import shardio.to_thread
import shardio_disk
import shardio_net
import shardio_net.native

PUBLIC: list[ModuleType] = [
    shardio,
    shardio.lowlevel,
    shardio.testing,
    shardio.abc,
    shardio.from_thread,
    shardio.to_thread,
    shardio_net,
    shardio_net.native,
    shardio_disk,
]
REFERENCE = Path(__file__).parent.parent / "docs" / "reference"


def _names(module: ModuleType) -> list[str]:
    return list(getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")]))


def test_every_name_the_core_exports_is_reachable_from_a_public_module() -> None:
    core = shardio._core
    hidden = [
        name
        for name in core.__all__
        if not any(getattr(module, name, None) is getattr(core, name) for module in PUBLIC)
    ]
    assert hidden == []


def test_every_name_in_a_public_all_exists() -> None:
    missing = [
        f"{module.__name__}.{name}"
        for module in PUBLIC
        for name in _names(module)
        if not hasattr(module, name)
    ]
    assert missing == []


def test_every_public_name_appears_in_the_reference() -> None:
    text = " ".join(path.read_text() for path in REFERENCE.glob("*.md"))
    words = set(re.findall(r"\w+", text))
    undocumented = [
        f"{module.__name__}.{name}"
        for module in PUBLIC
        for name in _names(module)
        if name not in words
    ]
    assert undocumented == []


def test_conflict_detector_refuses_a_second_user_until_the_first_leaves() -> None:
    detector = shardio.lowlevel.ConflictDetector("already busy here")
    with detector:
        try:
            with detector:
                raise AssertionError("entered twice")
        except shardio.BusyResourceError as exc:
            assert str(exc) == "already busy here"
    with detector:  # released, even after the refusal
        pass


async def test_aclose_forcefully_closes_disk_files(tmp_path: Path) -> None:
    dma = await shardio_disk.open_dma(tmp_path / "a", "w")
    buffered = await shardio_disk.open_file(tmp_path / "b", "w")
    for resource in (dma, buffered):
        assert isinstance(resource, shardio.abc.AsyncResource)
        await shardio.aclose_forcefully(resource)
    assert dma.closed
    assert buffered.closed
