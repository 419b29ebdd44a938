"""The report's cross-family ranking tables, on metrics files written here."""

import json

import pytest

from genlab.tracking.report import (
    build_report,
    experiments_tables,
    overview_table,
    ranking,
    summary_table,
)


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


def _show(fd_main: float, fd_exp: float) -> list:
    """`dvc exp show --json` as DVC 3.67 writes it (the fields the report reads): the workspace,
    then the commit with one experiment under it."""
    def data(fd: float, lr: float) -> dict:
        return {"params": {"params.yaml": {"data": {"diffusion": {"edm_fmnist": {"lr": lr}},
                                                    "seed": 0}}},
                "metrics": {"metrics/eval/edm_fmnist.json": {"data": {"sample_fd": fd}},
                            "metrics/eval/ae.json": {"data": {"recon_mse": 0.05}},
                            "metrics/train/edm_fmnist.json": {"data": {"steps": 10}}}}
    return [{"rev": "workspace", "name": None, "data": data(fd_main, 2e-3), "experiments": None},
            {"rev": "f6e69b4fe1", "name": "main", "data": data(fd_main, 2e-3),
             "experiments": [{"revs": [{"rev": "0a1b2c3d4e", "name": "lr-sweep-1",
                                        "data": data(fd_exp, 1e-3)}]}]}]


def test_experiments_table_has_each_models_headline_per_experiment_and_the_changed_params():
    table, changed = experiments_tables(_show(23.0, 19.5))
    assert list(table.columns) == ["workspace", "main", "lr-sweep-1"]
    assert table.loc[("edm_fmnist", "FD")].tolist() == [23.0, 23.0, 19.5]
    assert table.loc[("ae", "recon MSE")].tolist() == [0.05] * 3
    assert ("edm_fmnist", "steps") not in table.index  # train metrics are not headlines
    assert list(changed.index) == ["diffusion.edm_fmnist.lr"]  # seed is the same everywhere


def test_report_cards_hold_family_and_params_and_the_experiments_section(metrics):
    out = metrics / "reports"
    build_report(metrics / "metrics", metrics / "figures", out / "summary.csv", out,
                 model_params={"edm_fmnist": ("diffusion", {"lr": 0.002, "net": {"kind": "unet"}})},
                 experiments=_show(23.0, 19.5))
    page = (out / "index.html").read_text()
    card = page.split('<section class="card" id="edm_fmnist">')[1].split("</section>")[0]
    assert "(diffusion)" in card and "net.kind" in card and "unet" in card
    assert "lr-sweep-1" in page and "diffusion.edm_fmnist.lr" in page
    assert "Across DVC experiments" in (out / "report.md").read_text()
    build_report(metrics / "metrics", metrics / "figures", out / "summary.csv", out)
    assert "was not available" in (out / "index.html").read_text()


def test_overview_has_one_row_per_model_with_its_family_and_headline_metric(metrics):
    table = summary_table(metrics / "metrics")
    view = overview_table(table, {"edm_fmnist": ("diffusion", {}), "gan_rings": ("gan", {})})
    assert list(view.index) == list(table.index)
    assert tuple(view.loc["edm_fmnist", ["family", "metric", "value"]]) == ("diffusion", "FD", 23.0)
    assert tuple(view.loc["gan_rings", ["family", "metric", "value"]]) == ("gan", "SWD/floor", 1.2)
    assert tuple(view.loc["ae", ["family", "metric", "value"]]) == ("", "recon MSE", 0.05)
    out = metrics / "reports"
    build_report(metrics / "metrics", metrics / "figures", out / "summary.csv", out)
    page = (out / "index.html").read_text()
    assert '<a href="#edm_fmnist">edm_fmnist</a>' in page  # overview rows link to the cards
    assert '<section class="card" id="edm_fmnist">' in page
