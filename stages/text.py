"""Stage text: the character corpus of the `gpt` family's language models. Reads Debian's
`fortunes` files from a local folder (the command's argument; no download: the package is the
source), splits them by record into train / val / test (seeded) and writes character ids, the
vocabulary and a manifest with sha256 under data/text/fortunes/.
`python -m stages.text /usr/share/games/fortunes`."""

from __future__ import annotations

import sys
from pathlib import Path

from genlab.config import ConfigError, load_seed
from genlab.data.text import corpus_files, read_records, split_records, write_splits
from stages._common import load_params, main, tracker

OUT = Path("data/text/fortunes")
HELD_OUT = (0.05, 0.05)  # fractions of the records in val and test


def run(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ConfigError("usage: python -m stages.text <folder of fortune files>")
    files = corpus_files(Path(argv[0]))  # DataError naming the path and the apt-get fix
    params = load_params()
    seed = load_seed(params)
    with tracker(params, "text", {"seed": seed, "text_source": argv[0]}) as tr:
        records = read_records(files)
        manifest = write_splits(OUT, split_records(records, HELD_OUT, seed), files)
        print(f"text: {len(records):,} records from {len(files)} files of {argv[0]}, "
              f"{manifest['vocab_size']} characters, split {manifest['characters']}",
              file=sys.stderr)
        tr.tag_outputs([OUT])


if __name__ == "__main__":
    main(run)
