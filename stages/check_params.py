"""`python -m stages.check_params`: validate all of params.yaml without running anything."""

from __future__ import annotations

from stages._common import load_params, main, validate_params


def run(argv: list[str]) -> None:
    validate_params(load_params())
    print("params.yaml: ok")


if __name__ == "__main__":
    main(run)
