"""Densities, probability maps and latent paths of adsorbate configurations.

Reference: an analytic model whose score is exact (a wrapped-normal × normal mixture on the
state, :class:`digmat.core.ProductMixture`), so log p of every configuration is known in
closed form; the state → Cartesian volume factor is checked against autograd's Jacobian.
"""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase.build import fcc111
from ase.io import read, write

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.tasks.density import adsorbate_log_density, density_map, interpolate_adsorbates, state_log_jacobian
from digmat.cli.main import main
from digmat.core import NoiseSchedule, ProductMixture
from digmat.systems import AdsorbateStateConfig, AdsorbateSystem

SLAB = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))


class AnalyticModel(torch.nn.Module):
    """Stands in for a trained model: the exact score of a mixture on the system's states."""

    def __init__(self, weights, means, stds, state=AdsorbateStateConfig()):
        super().__init__()
        self.config = SimpleNamespace(state=state, schedule=NoiseSchedule())
        self.spec = (weights, means, stds)
        self.dtype_carrier = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def mixture(self, system):
        w, m, s = (torch.as_tensor(v, dtype=torch.float64) for v in self.spec)
        return ProductMixture(system.diffusion(self.config.schedule), w, m, s)

    def score_fn(self, system, temperature):
        return self.mixture(system).score_fn()


def o_model():
    # O over the 2x2 cell: 70 % around (1/6, 1/6) (fcc-like), 30 % around (1/3, 1/3), height ~ 0
    return AnalyticModel([0.7, 0.3], [[1 / 6, 1 / 6, 0.0], [1 / 3, 1 / 3, 0.1]], [[0.05, 0.05, 0.2], [0.04, 0.06, 0.15]])


def oh_model():
    # OH: O anchor on the torus, H 0.97 Å above it
    return AnalyticModel([1.0], [[0.25, 0.5, 0.0, 0.0, 0.0, 0.97]], [[0.06, 0.06, 0.2, 0.1, 0.1, 0.05]])


def configs_from_states(system, states):
    out = system.to_atoms(states)
    for a in out:
        a.info["binding_index"] = system.num_slab + system.anchor
    return out


def test_state_jacobian_matches_autograd():
    ads = get_adsorbate("OH")
    for state in (AdsorbateStateConfig(), AdsorbateStateConfig(length_scale=0.7)):
        system = AdsorbateSystem(SLAB, ads, config=state)
        x = torch.tensor([0.3, 0.6, 0.2, 0.1, -0.2, 0.9], dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda s: system.positions(s[None])[0, system.num_slab :].reshape(-1), x)
        assert state_log_jacobian(system) == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-10)


@pytest.mark.parametrize("make_model, adsorbate", [(o_model, "O"), (oh_model, "OH")])
def test_log_density_matches_analytic(make_model, adsorbate):
    model = make_model()
    system = AdsorbateSystem(SLAB, get_adsorbate(adsorbate), config=model.config.state)
    mixture = model.mixture(system)
    states, _ = mixture.sample(6, generator=torch.Generator().manual_seed(1))
    configs = configs_from_states(system, states)
    before = [a.positions.copy() for a in configs]
    scored = adsorbate_log_density(configs, model, probes=64, seed=2, rtol=1e-5)
    t_min = torch.tensor(model.config.schedule.t_min, dtype=torch.float64)  # the ODE's data end
    expected = mixture.log_prob(system.to_state(configs), t_min) - state_log_jacobian(system)
    got = torch.tensor([a.info["log_density"] for a in scored], dtype=torch.float64)
    err = torch.tensor([a.info["log_density_stderr"] for a in scored], dtype=torch.float64)
    assert torch.all((got - expected).abs() <= 0.03 + 3 * err), (got, expected, err)
    if adsorbate == "O":
        assert torch.all(err == 0)  # 3 entries: exact trace
    assert all(np.array_equal(a.positions, b) for a, b in zip(configs, before))  # inputs untouched


def test_lattice_translated_configuration_has_same_density():
    model = o_model()
    system = AdsorbateSystem(SLAB, get_adsorbate("O"), config=model.config.state)
    config = configs_from_states(system, torch.tensor([[0.2, 0.15, 0.1]], dtype=torch.float64))[0]
    shifted = config.copy()
    shifted.positions[-1] += SLAB.cell[0] - SLAB.cell[1]
    a, b = adsorbate_log_density([config, shifted], model)
    assert a.info["log_density"] == pytest.approx(b.info["log_density"], abs=1e-6)


def test_density_map_peaks_at_the_dominant_site_and_is_normalised():
    model = o_model()
    system = AdsorbateSystem(SLAB, get_adsorbate("O"), config=model.config.state)
    ref = configs_from_states(system, torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))[0]
    dmap = density_map(ref, model, grid=12, height=1.5)
    i, j = np.unravel_index(dmap.log_density.argmax(), dmap.log_density.shape)
    assert (dmap.u[i], dmap.v[j]) == pytest.approx((1 / 6, 1 / 6), abs=1 / 12 + 1e-9)
    area = np.linalg.norm(np.cross(SLAB.cell[0], SLAB.cell[1]))
    assert dmap.probability.sum() * area / 144 == pytest.approx(1.0)
    assert dmap.height == pytest.approx(1.5)


def test_interpolation_ends_reproduce_inputs_and_energies_come_from_calculator():
    model = oh_model()
    system = AdsorbateSystem(SLAB, get_adsorbate("OH"), config=model.config.state)
    mixture = model.mixture(system)
    states, _ = mixture.sample(2, generator=torch.Generator().manual_seed(3))
    a, b = configs_from_states(system, states)
    path = interpolate_adsorbates(a, b, model, num_points=5, calculator="emt")
    assert len(path) == 5 and [p.info["fraction"] for p in path] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    ends = system.to_state([path[0], path[-1]])
    diff = system.space.difference(ends, system.to_state([a, b]))
    assert diff.abs().max() < 2e-3
    from ase.calculators.emt import EMT

    probe = path[2].copy()
    probe.calc = EMT()
    assert path[2].info["energy"] == pytest.approx(probe.get_potential_energy())


def test_density_and_interpolate_cli(tmp_path, capsys, monkeypatch):
    import digmat.pretrained

    model = oh_model()
    monkeypatch.setattr(digmat.pretrained, "load_model", lambda name, device: model)
    system = AdsorbateSystem(SLAB, get_adsorbate("OH"), config=model.config.state)
    states, _ = model.mixture(system).sample(3, generator=torch.Generator().manual_seed(4))
    path = tmp_path / "configs.extxyz"
    write(path, configs_from_states(system, states))
    out = tmp_path / "d"
    assert main(["density", str(path), "--json", "--out", str(out), "--map", "--grid", "4", "--probes", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["log_density"]) == 3 and all(math.isfinite(v) for v in summary["log_density"])
    assert {p.name for p in out.iterdir()} == {"density.extxyz", "density.json", "density_map.json", "density_map.png"}
    assert read(out / "density.extxyz", ":")[1].info["log_density"] == pytest.approx(summary["log_density"][1])
    assert main(["interpolate", f"{path}@0", f"{path}@2", "-k", "3", "--json", "--out", str(tmp_path / "p")]) == 0
    assert json.loads(capsys.readouterr().out)["fractions"] == [0.0, 0.5, 1.0]
    assert len(read(tmp_path / "p" / "path.extxyz", ":")) == 3
    # errors: several frames where one is needed, missing file, no adsorbate, empty file
    assert main(["interpolate", str(path), f"{path}@0"]) == 2
    assert "pick one with" in capsys.readouterr().err
    assert main(["density", str(tmp_path / "nope.xyz")]) == 2
    assert "no such file" in capsys.readouterr().err
    write(tmp_path / "slab.extxyz", SLAB)
    assert main(["density", str(tmp_path / "slab.extxyz")]) == 2
    assert "no adsorbate atoms" in capsys.readouterr().err
    (tmp_path / "empty.xyz").write_text("")
    assert main(["density", str(tmp_path / "empty.xyz")]) == 2
    assert "is empty" in capsys.readouterr().err
