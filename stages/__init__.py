"""DVC stage entry points, run as `python -m stages.<name>`.

genlab is imported from this tree's src/, ahead of an installed copy. DVC hashes this tree's
files as the stages' deps, and `dvc exp run --temp` and queued experiments run in a copy of
the workspace whose src/ may differ from the checkout an editable install points at; the code
that runs is then the code DVC hashed (and that stages/_deps.py fingerprints).
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if sys.path[:1] != [_SRC]:
    sys.path.insert(0, _SRC)
