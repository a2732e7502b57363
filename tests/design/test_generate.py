import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from digmat.design.carbon24 import carbon_prototypes
from digmat.design.evaluate import LOOSE, STRICT, Matcher, coordination_numbers, evaluate_samples, is_valid, nearest_neighbor_distances, sp3_share, space_group
from digmat.design.generate import GapGuidance, SamplerConfig, gap_function, sample_crystals
from tests.models.test_crystal import tiny_model
from tests.systems.test_crystal import equivalent_copy


class VolumePredictor:
    """Toy 'gap' = volume per atom - 6.3 (in 'eV'): depends on the lattice only."""

    def predict(self, positions, cell, numbers):
        return torch.linalg.det(cell) / positions.shape[-2] - 6.3


class PositionPredictor:
    """Toy 'gap' = 2 <cos(2 pi (f_1 - f_2))> over atom pairs of the first axis: depends on positions only."""

    def predict(self, positions, cell, numbers):
        frac = torch.linalg.solve(cell.transpose(1, 2), positions.transpose(1, 2)).transpose(1, 2)
        d = frac[:, :, None, 0] - frac[:, None, :, 0]
        return 2 * torch.cos(2 * np.pi * d).mean((1, 2))


def generator_model():
    return tiny_model(elements=("C",), num_atoms=((4, 1),)).float()


def mean_prediction(predictor, samples):
    pos = torch.tensor(np.stack([a.positions for a in samples]))
    cell = torch.tensor(np.stack([a.cell.array for a in samples]))
    return float(predictor.predict(pos, cell, samples[0].numbers).mean())


@pytest.mark.parametrize("predictor, spread", [(VolumePredictor(), 3.0), (PositionPredictor(), 0.6)])
def test_guidance_moves_the_prediction_toward_the_target(predictor, spread):
    """Targets on both sides of the unguided mean: guided samples (same seeds) move toward each."""
    model = generator_model()
    kw = dict(sampler=SamplerConfig("ode", 15), seed=0, dtype=torch.float64)
    base = mean_prediction(predictor, sample_crystals(model, 8, **kw))
    low, high = base - spread, base + spread
    up = mean_prediction(predictor, sample_crystals(model, 8, predictor=predictor, guidance=GapGuidance(high, width=0.5), **kw))
    down = mean_prediction(predictor, sample_crystals(model, 8, predictor=predictor, guidance=GapGuidance(low, width=0.5), **kw))
    assert down < base - 0.3 * spread and up > base + 0.3 * spread


def test_guided_sampler_evaluates_the_network_once_per_step():
    model = generator_model()
    calls = []
    eps = model.eps

    def counting(*args):
        calls.append(1)
        return eps(*args)

    model.eps = counting
    sample_crystals(model, 3, predictor=VolumePredictor(), guidance=GapGuidance(2.0), sampler=SamplerConfig("sde", 7))
    assert len(calls) == 7


def test_guidance_only_below_max_noise():
    """GapGuidance(max_noise=...) leaves the score untouched above that positional noise (Å)
    and guides below it; the predictor is then called only on the low-noise steps."""
    from digmat.design.generate import _score

    model = generator_model().double()
    system = model.system([6] * 4)
    predictor = VolumePredictor()
    calls = []

    class Counting:
        def predict(self, *args):
            calls.append(1)
            return predictor.predict(*args)

    gated = _score(model, system, Counting(), GapGuidance(3.0, max_noise=0.2))
    free = _score(model, system, None, None)
    t_max = float(model.config.schedule.t_of_sigma_tilde(torch.tensor(0.2 / model.config.state.length_scale, dtype=torch.float64)))
    x = system.space.wrap(system.space.sample_prior(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    high, low = torch.full((2,), min(1.0, 2 * t_max), dtype=torch.float64), torch.full((2,), 0.5 * t_max, dtype=torch.float64)
    torch.testing.assert_close(gated(x, high), free(x, high))
    assert not calls
    assert (gated(x, low) - free(x, low)).abs().max() > 1e-6 and calls
    with pytest.raises(ValueError, match="max_noise"):
        GapGuidance(1.0, max_noise=0.0)


def test_guidance_gradient_reaches_positions_and_lattice():
    from tests.design.test_predictor import tiny_predictor

    model = tiny_model()
    system = model.system([6] * 4)
    f = gap_function(tiny_predictor(), system)
    x = system.to_state(carbon_prototypes(rattled=1)[5]).requires_grad_(True)  # rattled lonsdaleite
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    assert grad[0, :12].abs().max() > 0 and grad[0, 12:].abs().max() > 0
    h = 1e-6
    for k in (1, 7, 12, 14, 16):
        d = torch.zeros_like(x)
        d[0, k] = h
        with torch.no_grad():
            fd = (f(x + d) - f(x - d)) / (2 * h)
        assert float(grad[0, k]) == pytest.approx(float(fd), rel=1e-4, abs=1e-9)


def test_sample_crystals_sizes_and_errors():
    model = tiny_model(elements=("C",), num_atoms=((2, 1), (4, 1))).float()
    out = sample_crystals(model, 6, sampler=SamplerConfig("sde", 3), batch_size=2)
    assert len(out) == 6 and {len(a) for a in out} <= {2, 4}
    assert [a.info["sample_index"] for a in out] == list(range(6))
    assert all(a.pbc.all() and set(a.get_chemical_symbols()) == {"C"} for a in out)
    fixed = sample_crystals(model, 2, num_atoms=[3, 5], sampler=SamplerConfig("sde", 2))
    assert [len(a) for a in fixed] == [3, 5]
    with pytest.raises(ValueError, match="predictor"):
        sample_crystals(model, 2, guidance=GapGuidance(1.0), sampler=SamplerConfig("sde", 2))
    with pytest.raises(ValueError, match="not trained on Si"):
        sample_crystals(model, 2, element="Si", sampler=SamplerConfig("sde", 2))
    with pytest.raises(ValueError):
        GapGuidance(1.0, width=0.0)
    dense = sample_crystals(model, 2, num_atoms=3, sampler=SamplerConfig("sde", 4, grid_power=3.0))
    assert all(len(a) == 3 and np.isfinite(a.positions).all() for a in dense)
    with pytest.raises(ValueError, match="grid_power"):
        SamplerConfig("ode", 10, grid_power=2.0)


def test_validity_matching_and_space_groups():
    diamond = bulk("C", "diamond", a=3.567, cubic=True)
    assert is_valid(diamond) == (True, "")
    close = Atoms("C2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[2.0, 2.0, 2.0], pbc=True)
    assert not is_valid(close)[0] and "distance" in is_valid(close)[1]
    sparse = Atoms("C", cell=[10.0, 10.0, 10.0], pbc=True)
    assert not is_valid(sparse)[0] and "density" in is_valid(sparse)[1]
    assert space_group(diamond)[0] == 227
    protos = carbon_prototypes()
    ref = {"loose": Matcher(protos[:1] + protos[3:], **LOOSE), "strict": Matcher(protos[:1] + protos[3:], **STRICT)}
    same = equivalent_copy(diamond, 0)
    same.rattle(0.02, seed=0)
    assert ref["strict"].best_rms(same) < 0.05
    assert ref["loose"].best_rms(protos[2]) is None  # lonsdaleite is not in this reference
    summary = evaluate_samples([same, protos[2], close], [6.3, 6.2, np.nan], reference=ref, target=6.0)
    assert summary["n_valid"] == 2 and summary["match_rate_loose"] == pytest.approx(1 / 3)
    assert summary["novelty"] == pytest.approx(0.5) and summary["uniqueness"] == 1.0
    assert summary["share_within_window"] == pytest.approx(2 / 3)
    assert summary["samples"][0]["space_group"] in (227, 141, 166, 12, 15, 2, 1)
    assert 1.5 < summary["nn_distance_quantiles"][0] <= summary["nn_distance_quantiles"][2] < 1.6  # diamond's and lonsdaleite's bonds


def test_matched_reference_gaps_separate_which_structure_from_how_precisely():
    """Each sample carries the gap of its closest loose match (index from ``best_match``): a rattled
    diamond whose own gap closed still 'intends' the gapped reference structure."""
    diamond = bulk("C", "diamond", a=3.567, cubic=True)
    protos = carbon_prototypes()
    reference = [diamond] + protos[3:]
    ref = {"loose": Matcher(reference, **LOOSE)}
    reference_gaps = [5.0] + [0.0] * (len(reference) - 1)
    rattled = equivalent_copy(diamond, 0)
    rattled.rattle(0.05, seed=1)
    assert ref["loose"].best_match(rattled)[1] == 0 and ref["loose"].best_match(protos[3])[1] == 1
    summary = evaluate_samples([rattled, protos[2], protos[3]], [0.1, 6.2, 0.0], reference=ref, target=5.0,
                               reference_gaps=reference_gaps)
    assert [s["matched_gap"] for s in summary["samples"]] == [5.0, None, 0.0]  # lonsdaleite matches nothing
    assert summary["gapped_share"] == pytest.approx(1 / 3)  # own gaps: only lonsdaleite's is open
    assert summary["matched_gapped_share"] == pytest.approx(1 / 2)  # of the two matched, the diamond
    assert summary["gapped_share_of_gapped_matches"] == 0.0  # ... whose own gap closed
    assert summary["matched_share_within_window"] == pytest.approx(1 / 3)
    assert "matched_gapped_share" not in evaluate_samples([rattled], [0.1], reference=ref)  # only with reference gaps
    # bonding beside the matched structure's: the rattled diamond keeps its four bonds per atom
    assert summary["samples"][0]["sp3_share"] == summary["samples"][0]["matched_sp3_share"] == 1.0
    assert summary["samples"][1]["matched_sp3_share"] is None
    assert summary["matched_sp3_share"] == pytest.approx((1.0 + sp3_share(protos[3])) / 2)
    assert summary["sp3_share"] == pytest.approx((1.0 + sp3_share(protos[2]) + sp3_share(protos[3])) / 3)


def test_sp3_share_counts_four_bonded_atoms():
    """Diamond: every atom has four bonds (sp3 share 1); graphite: three (0); a diamond stretched by
    30 % has no bond left within the cutoff."""
    from tests.design.test_tightbinding import graphite

    diamond = bulk("C", "diamond", a=3.567, cubic=True)
    assert (coordination_numbers(diamond) == 4).all() and sp3_share(diamond) == 1.0
    assert (coordination_numbers(graphite()) == 3).all() and sp3_share(graphite()) == 0.0
    stretched = bulk("C", "diamond", a=3.567 * 1.3)
    assert (coordination_numbers(stretched) == 0).all() and sp3_share(stretched) == 0.0


def test_nearest_neighbor_distances_are_bond_lengths():
    """Diamond: a sqrt(3) / 4 for every atom (through periodic images, also in the primitive cell);
    an isolated atom has none."""
    for cell in (bulk("C", "diamond", a=3.567), bulk("C", "diamond", a=3.567, cubic=True)):
        np.testing.assert_allclose(nearest_neighbor_distances(cell), 3.567 * 3**0.5 / 4, rtol=1e-12)
    lone = Atoms("C", cell=[10.0, 10.0, 10.0], pbc=True)
    assert np.isnan(nearest_neighbor_distances(lone)).all()


def test_denoiser_jacobian_of_the_guidance():
    """x0_hat's Jacobian is 1 / (alpha (1 + u^2)) per entry: 1/alpha at low noise, -> 0 at high noise."""
    from digmat.design.generate import _ScoreCache, _surrogate_jacobian_score

    model = tiny_model()
    system = model.system([6] * 2)
    diffusion = system.diffusion(model.config.schedule)
    score = _surrogate_jacobian_score(_ScoreCache(model.score_fn(system)), diffusion)
    x = system.to_state(carbon_prototypes()[0]).requires_grad_(True)
    for tv in (0.01, 0.3, 0.9):
        t = torch.tensor([tv], dtype=torch.float64)
        x0 = diffusion.denoise(x, t, score(x, t))
        (jac,) = torch.autograd.grad(x0.sum(), x)
        std, alpha = diffusion.noise_std(t, x), diffusion.signal_coef(t, x)
        torch.testing.assert_close(jac, 1 / (alpha * (1 + (std / alpha) ** 2)), atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(x0.detach(), diffusion.denoise(x.detach(), t, model.score_fn(system)(x.detach(), t)))


def test_train_crystal_model_warm_starts_from_init(tmp_path):
    """init's weights start training (a vanishing learning rate keeps them); another network is refused."""
    from dataclasses import replace

    from digmat.design.generate import train_crystal_model
    from digmat.train import TrainConfig

    init = tiny_model(seed=1)
    data = carbon_prototypes()
    tc = TrainConfig(steps=1, batch_size=2, lr=1e-12, warmup_steps=1, log_every=1, checkpoint_every=10)
    warm, _ = train_crystal_model(data, tmp_path / "warm", config=init.config, train_config=tc, init=init)
    cold, _ = train_crystal_model(data, tmp_path / "cold", config=init.config, train_config=tc)
    for name, value in init.state_dict().items():
        assert torch.allclose(warm.state_dict()[name].double(), value, atol=1e-6), name
    assert any(not torch.allclose(cold.state_dict()[k].double(), v, atol=1e-3) for k, v in init.state_dict().items() if v.is_floating_point())
    other = replace(init.config, network=replace(init.config.network, num_layers=1))
    with pytest.raises(ValueError, match="warm-start"):
        train_crystal_model(data, tmp_path / "other", config=other, train_config=tc, init=init)


def test_crystal_sampler_defaults_and_the_default_sampling_uses_them(monkeypatch):
    from digmat.core import LangevinCorrector
    from digmat.design import generate
    from digmat.design.generate import crystal_sampler

    model = generator_model()
    t_max = float(model.time_of_noise(0.3))
    assert crystal_sampler(model) == SamplerConfig("sde", 200, 3.0, corrector=LangevinCorrector(5, 0.2, t_max))
    assert crystal_sampler(model, "ode") == SamplerConfig("ode", 25)
    assert crystal_sampler(model, "sde", 50, grid_power=1.0, corrector=0) == SamplerConfig("sde", 50)
    with pytest.raises(ValueError, match="SDE sampler only"):
        crystal_sampler(model, "ode", corrector=2)
    used = []
    real = SamplerConfig.sample

    def spy(self, *args, **kwargs):
        used.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(generate.SamplerConfig, "sample", spy)
    sample_crystals(model, 1, num_atoms=4, steps=6)
    sample_crystals(model, 1, num_atoms=4, sampler="sde", steps=6)
    assert used == [crystal_sampler(model, "sde", 6), SamplerConfig("sde", 6)]  # no sampler: the measured default; by name: DiG's chain
