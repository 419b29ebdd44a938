"""Golden numbers: every sampler and loss on a fixed-seed float64 TinyMLP backbone.

These pin the exact arithmetic (step order, coefficients, noise draws). After an intended
change, regenerate with `PYTHONPATH=. .venv/bin/python -m tests.diffusion.test_golden` and
paste the printed dict over GOLDEN (say why in the commit message).
"""

import pytest
import torch

from genlab.models.precond import ClassifierFreeGuidance, DDPMEpsModel, EDMPrecond, NCSNScore
from genlab.objectives.diffusion import DDPMLoss, EDMLoss, NCSNLoss
from genlab.samplers.ddpm import ddim_sampler, ddpm_ancestral_sampler
from genlab.samplers.edm import edm_heun_sampler, edm_stochastic_sampler
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.samplers.schedules import alphas_cumprod, linear_betas, ncsn_sigmas
from tests.diffusion.analytic import tiny_mlp

F64 = torch.float64
LABELS = torch.tensor([0, 1, 2, -1, 0, 1, 2, -1])
AB = alphas_cumprod(linear_betas(20, 1e-3, 0.2))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _latents() -> torch.Tensor:
    return torch.randn(8, 2, generator=_gen(0), dtype=F64)


def _data() -> torch.Tensor:
    return torch.randn(8, 2, generator=_gen(5), dtype=F64) * 0.5 + 0.3


def _run(name: str) -> torch.Tensor:
    edm, eps = EDMPrecond(tiny_mlp(0)), DDPMEpsModel(tiny_mlp(0), noise_label_scale=0.05)
    score = NCSNScore(tiny_mlp(0))
    runs = {
        "edm_heun": lambda: edm_heun_sampler(edm, _latents(), class_labels=LABELS, num_steps=4),
        "edm_heun_cfg": lambda: edm_heun_sampler(ClassifierFreeGuidance(edm, 2.0), _latents(),
                                                 class_labels=LABELS, num_steps=4),
        "edm_stochastic": lambda: edm_stochastic_sampler(
            edm, _latents(), generator=_gen(1), class_labels=LABELS, num_steps=4, S_churn=2.0,
            S_min=0.01, S_max=50.0, S_noise=1.007),
        "ddim": lambda: ddim_sampler(eps, (8, 2), AB, n_steps=5, eta=0.5, generator=_gen(2),
                                     class_labels=LABELS, dtype=F64),
        "ddpm": lambda: ddpm_ancestral_sampler(eps, (8, 2), AB, generator=_gen(3),
                                               class_labels=LABELS, dtype=F64),
        "langevin": lambda: annealed_langevin_dynamics(
            score, _latents(), ncsn_sigmas(1.0, 0.1, 3), n_steps_each=3, eps=1e-3,
            generator=_gen(4), class_labels=LABELS),
        "loss_ncsn": lambda: NCSNLoss(ncsn_sigmas(1.0, 0.1, 3))(score, _data(), LABELS, _gen(6)),
        "loss_ddpm": lambda: DDPMLoss(AB, label_dropout=0.5)(eps, _data(), LABELS, _gen(7)),
        "loss_edm": lambda: EDMLoss()(edm, _data(), LABELS, _gen(8)),
    }
    with torch.no_grad():
        return runs[name]()


def _summary(x: torch.Tensor) -> tuple[float, float]:
    return x.sum().item(), x.square().sum().item()


NAMES = ["edm_heun", "edm_heun_cfg", "edm_stochastic", "ddim", "ddpm", "langevin",
         "loss_ncsn", "loss_ddpm", "loss_edm"]
GOLDEN = {
    'edm_heun': (-10.825074783760444, 110.38599756848251),
    'edm_heun_cfg': (-16.252143995033556, 132.6907455683956),
    'edm_stochastic': (-12.711319024081199, 263.6745777381633),
    'ddim': (-14.005238253587587, 119.11158346793427),
    'ddpm': (-3.712823929111213, 205.73946128300778),
    'langevin': (-2.9698529846101795, 25.63666660646778),
    'loss_ncsn': (3.8801842956586303, 3.6404405269659357),
    'loss_ddpm': (9.841604684982823, 26.315733126324155),
    'loss_edm': (9.357592227984359, 19.602396519972046),
}


@pytest.mark.parametrize("name", NAMES)
def test_golden(name):
    assert _summary(_run(name)) == pytest.approx(GOLDEN[name], rel=1e-9, abs=1e-12)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("GOLDEN = {")
    for name in NAMES:
        print(f"    {name!r}: {_summary(_run(name))!r},")
    print("}")
