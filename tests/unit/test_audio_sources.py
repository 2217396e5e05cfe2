"""The real recordings in data/audio: each clip has a license row in its source's SOURCE.md."""

from __future__ import annotations

import re
from pathlib import Path

AUDIO = Path(__file__).resolve().parents[2] / "data" / "audio"
ROW = re.compile(r"^\| `([^`]+\.wav)` \|(.*)$", re.M)


def _rows() -> dict[Path, str]:
    rows = {}
    for source in AUDIO.glob("*/SOURCE.md"):
        for name, rest in ROW.findall(source.read_text(encoding="utf-8")):
            rows[source.parent / name] = rest
    return rows


def test_every_clip_has_a_license_row_and_every_row_a_clip():
    clips = set(AUDIO.glob("*/*/*.wav"))
    rows = _rows()
    assert clips, "no recordings in data/audio"
    assert sorted(map(str, clips - rows.keys())) == []
    assert sorted(map(str, rows.keys() - clips)) == []


def test_rows_name_a_redistributable_license():
    allowed = re.compile(r"CC0|CC[ -]BY|Attribution|public domain|GPL-2\+", re.I)
    refused = re.compile(r"BY-NC|non-?commercial|Sampling\+|BigSoundBank", re.I)
    for clip, row in _rows().items():
        assert allowed.search(row), f"{clip.name}: no license named in {row[:120]!r}"
        assert not refused.search(row), f"{clip.name}: license does not allow it"
