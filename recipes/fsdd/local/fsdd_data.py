"""Where the Free Spoken Digit Dataset lives: a local folder, or its public home.

FSDD (CC BY-SA 4.0, Z. Jackson et al.): ``recordings/{digit}_{speaker}_{take}.wav``,
8 kHz mono; takes 0-4 are the official test set.
"""

from __future__ import annotations

import io
import urllib.request
import zipfile
from pathlib import Path

# The dataset's public home; used only when no local copy is found.
FSDD_ZIP = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"


def locate(data: str | Path, cache: str | Path = "exp/fsdd-download") -> Path:
    """Return a folder holding ``recordings/``: ``data`` itself, or a downloaded copy."""
    data = Path(data)
    if (data / "recordings").is_dir():
        return data
    cache = Path(cache)
    found = sorted(cache.glob("*/recordings"))
    if found:
        return found[0].parent
    print(f"{data}/recordings not found; downloading FSDD from {FSDD_ZIP}")
    with urllib.request.urlopen(FSDD_ZIP, timeout=120) as response:
        zipfile.ZipFile(io.BytesIO(response.read())).extractall(cache)
    return sorted(cache.glob("*/recordings"))[0].parent


def parse_name(path: Path) -> tuple[str, str, int]:
    """``7_theo_12.wav`` -> ``("7", "theo", 12)``."""
    digit, speaker, take = path.stem.split("_")
    return digit, speaker, int(take)
