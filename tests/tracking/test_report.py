"""The report's cross-family ranking tables, on metrics files written here."""

import json

import pytest

from genlab.tracking.report import build_report, ranking, summary_table


@pytest.fixture
def metrics(tmp_path):
    eval_dir = tmp_path / "metrics" / "eval"
    eval_dir.mkdir(parents=True)
    rows = {
        "edm_fmnist": {"sample_fd": 23.0, "sample_precision": 0.63, "sample_recall": 0.37},
        "gan_fmnist": {"sample_fd": 31.5, "sample_precision": 0.7, "sample_recall": 0.2},
        "flow_fmnist": {"sample_fd": 90.0, "test_bpd": 3.9},
        "vae_fmnist": {"sample_fd": 55.0, "nll_iwae_bpd": 4.2},
        "flow_moons": {"swd_over_floor": 1.9, "kl": 0.08, "kl_se": 0.01},
        "gan_rings": {"swd_over_floor": 1.2, "modes_covered": 5.0, "high_quality_frac": 0.97},
        "ae": {"recon_mse": 0.05},
    }
    for name, row in rows.items():
        (eval_dir / f"{name}.json").write_text(json.dumps(row))
    return tmp_path


def test_ranking_sorts_each_scale_and_takes_bits_per_dim_from_either_key(metrics):
    images, toys = ranking(summary_table(metrics / "metrics"))
    assert list(images.index) == ["edm_fmnist", "gan_fmnist", "vae_fmnist", "flow_fmnist"]
    assert images.loc["flow_fmnist", "bits_per_dim"] == 3.9
    assert images.loc["vae_fmnist", "bits_per_dim"] == 4.2
    assert images["bits_per_dim"].isna().sum() == 2
    assert list(toys.index) == ["gan_rings", "flow_moons"]
    assert "ae" not in images.index and "ae" not in toys.index


def test_report_shows_the_rankings_in_order(metrics):
    out = metrics / "reports"
    build_report(metrics / "metrics", metrics / "figures", out / "summary.csv", out)
    md = (out / "report.md").read_text()
    section = md.split("## Ranking: Fashion-MNIST")[1].split("## Ranking: toy")[0]
    order = [section.index(m) for m in ("edm_fmnist", "gan_fmnist", "vae_fmnist", "flow_fmnist")]
    assert order == sorted(order)
    assert "## Ranking: toy-set models" in md and "Ranking" in (out / "index.html").read_text()
