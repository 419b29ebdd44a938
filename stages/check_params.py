"""`python -m stages.check_params`: validate all of params.yaml, under every profile, without
running anything (`make check-params`)."""

from __future__ import annotations

from typing import Any

from genlab import families
from genlab.concepts.config import ConceptsConfig
from genlab.config import (
    PROFILES,
    ConfigError,
    RuntimeConfig,
    TrackingConfig,
    check_top_level,
    load,
    load_profile,
    load_section,
    load_seed,
)
from genlab.data.config import DataConfig
from genlab.models.classifier_config import EvaluatorConfig
from genlab.scratch.config import ScratchConfig
from stages._common import (
    check_model_name,
    evaluate_section,
    known_sections,
    load_params,
    main,
    section,
)


def validate_params(params: dict) -> None:
    """Validate every section of params.yaml under every profile, active first (used by
    `make check-params` and tests)."""
    check_top_level(params, known_sections())
    load_seed(params)
    active = load_profile(params)
    load(RuntimeConfig, params.get("runtime", {}), "runtime")
    load(TrackingConfig, params.get("tracking", {}), "tracking")
    load(DataConfig, section(params, "data"), "data")
    load(EvaluatorConfig, section(params, "evaluator"), "evaluator")
    load(ConceptsConfig, params.get("concepts", {}), "concepts")
    load(ScratchConfig, params.get("scratch", {}), "scratch")
    models = _model_sections(params, families.available())
    for profile in (active, *[p for p in PROFILES if p != active]):
        evaluate_section(params, profile)
        for family, path, raw in models:
            load_section(families.get(family).config, raw, path, profile)


def _model_sections(params: dict, family_names: list[str]) -> list[tuple[str, str, Any]]:
    """(family, key path, raw) of every model under a family section or presets.<family>,
    checking that names are unique across families (they name models/<name>.pt)."""
    presets = params.get("presets") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"presets must be a mapping of family -> models, "
                          f"got {type(presets).__name__}")
    for family in presets:
        if family not in family_names:
            raise ConfigError(f"presets.{family} is not a model family ({family_names})")
    out, seen = [], {}
    for family in family_names:
        for where, block in ((family, params.get(family)), (f"presets.{family}",
                                                           presets.get(family))):
            if block is None:
                continue
            if not isinstance(block, dict):
                raise ConfigError(f"{where} must be a mapping of model name -> section, "
                                  f"got {type(block).__name__}")
            for name, raw in block.items():
                check_model_name(where, name)
                if name in seen:
                    raise ConfigError(f"{where}.{name}: the name is taken by {seen[name]}.{name}"
                                      " (model names are unique: they name models/<name>.pt)")
                seen[name] = where
                out.append((family, f"{where}.{name}", raw))
    if not out:
        raise ConfigError(f"params.yaml defines no model (a section per family: {family_names})")
    return out


def run(argv: list[str]) -> None:
    validate_params(load_params())
    print("params.yaml: ok")


if __name__ == "__main__":
    main(run)
