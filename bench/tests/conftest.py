"""The benchmark modules import each other as top-level modules (bench/ is their path)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
