"""AdsorbateEnergy: calculator energies of adsorbate states, forces mapped to state gradients
(checked against central differences of EMT energies), the height window, call counting, and
replica exchange on it (a Cu(111) + O smoke run)."""

import numpy as np
import pytest
import torch
from ase.build import fcc111
from ase.calculators.emt import EMT

from digmat.adsorption import get_adsorbate
from digmat.core import replica_exchange_mala
from digmat.core.mcmc import log_target_and_grad
from digmat.systems.adsorbate import AdsorbateSystem
from digmat.tasks.adsorbate_energy import AdsorbateEnergy

KB = 8.617333262e-5  # eV/K


@pytest.fixture(scope="module")
def system():
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
    slab.set_tags(np.where(slab.positions[:, 2] > slab.positions[:, 2].max() - 0.1, 1, 0))
    return AdsorbateSystem(slab, get_adsorbate("*CO"))


def test_energy_equals_the_calculators_and_its_gradient_is_minus_the_projected_forces(system):
    target = AdsorbateEnergy(system, EMT())
    x = torch.tensor([[0.3, 0.6, -0.2, 0.05, -0.1, 1.1], [0.9, 0.1, 0.1, 0.0, 0.0, 1.15]], dtype=torch.float64)
    e = target(x)
    for row, atoms in zip(e, system.to_atoms(x)):
        atoms.calc = EMT()
        assert float(row) == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    assert target.calls == 2
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(target(xg).sum(), xg)
    h = 1e-5
    for j in range(x.shape[1]):
        step = torch.zeros_like(x)
        step[:, j] = h
        fd = (target(x + step) - target(x - step)) / (2 * h)
        assert torch.allclose(grad[:, j], fd, rtol=1e-5, atol=1e-6), (j, grad[:, j], fd)


def test_outside_the_height_window_is_infinite_and_free(system):
    target = AdsorbateEnergy(system, EMT(), height_window=(0.5, 3.0))
    s = system.config
    heights = torch.tensor([0.2, 1.0, 3.4], dtype=torch.float64)
    x = torch.zeros(3, system.dim, dtype=torch.float64)
    x[:, 2] = (heights - s.height_offset) / s.length_scale
    x[:, 5] = 1.15
    e = target(x)
    assert torch.isinf(e[0]) and torch.isfinite(e[1]) and torch.isinf(e[2]) and target.calls == 1
    logu, grad = log_target_and_grad(lambda y: -target(y) / (KB * 300), x)
    assert torch.isinf(logu[0]) and (grad[0] == 0).all() and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="height_window"):
        AdsorbateEnergy(system, EMT(), height_window=(2.0, 1.0))


def test_replica_exchange_on_the_calculator_energy(system):
    target = AdsorbateEnergy(system, EMT())
    start = system.to_state(system.to_atoms(torch.tensor([[0.2, 0.4, 0.0, 0.0, 0.0, 1.15]], dtype=torch.float64)))
    betas = 1.0 / (KB * torch.tensor([300.0, 600.0, 1200.0], dtype=torch.float64))
    out = replica_exchange_mala(system.space, target, start.repeat(4, 1), betas, sweeps=12, burn_in=4, step_size=1e-4,
                                generator=torch.Generator().manual_seed(0))
    assert out.samples.shape == (3, 8, 4, system.dim)
    assert out.evaluations == target.calls == 3 * 4 * (1 + 12)
    e = target(out.samples.reshape(-1, system.dim))
    assert torch.allclose(e, out.energy.reshape(-1))
    h = target.heights(out.samples.reshape(-1, system.dim))
    assert ((h >= 0.3) & (h <= 3.5)).all()


def test_a_stepped_surface_keeps_its_lower_terrace_inside_the_window():
    """On Cu(211) the lower terrace's sites lie below the step-edge atom: the window's floor is
    measured from the lowest surface atom, so every site placement is a finite starting state."""
    from digmat.adsorption import build_slab
    from digmat.adsorption.placement import heuristic_placements

    slab = build_slab("Cu", (2, 1, 1))
    system = AdsorbateSystem(slab, get_adsorbate("O"))
    target = AdsorbateEnergy(system, EMT(), height_window=(0.3, 3.5))
    surface = slab.positions[slab.get_tags() == 1] @ system.normal
    assert target.bounds[0] == pytest.approx(surface.min() - surface.max() + 0.3) and target.bounds[0] < -0.5
    starts = system.to_state(heuristic_placements(slab, get_adsorbate("O"), relax_surface=False))
    h = target.heights(starts)
    assert (h < 0.3).any()                       # sites below the step edge's height ...
    assert torch.isfinite(target(starts)).all()  # ... are inside the window
