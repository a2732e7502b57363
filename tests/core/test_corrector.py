"""The Langevin corrector against exact targets: p_t is its fixed point, it repairs a coarse
chain, and its evaluations are counted.

Same tolerances as ``test_sampling.py`` (mode weights within 0.02, moments within 4 Monte-Carlo
standard errors plus 0.01).
"""

import pytest
import torch

from digmat.core import LangevinCorrector, SamplerConfig, langevin_step, sample_sde

from .targets import TARGETS
from .test_sampling import N_SAMPLES, check_samples, moment_features


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "integer >= 0"),
    (dict(steps=True), "integer >= 0"),
    (dict(snr=0.0), "snr"),
    (dict(t_max=0.0), "t_max"),
    (dict(t_max=1.5), "t_max"),
])
def test_bad_corrector_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LangevinCorrector(**kwargs)


def test_corrector_applies_to_the_sde_only():
    with pytest.raises(ValueError, match="SDE only"):
        SamplerConfig("ode", 10, corrector=LangevinCorrector())
    with pytest.raises(ValueError, match="LangevinCorrector"):
        SamplerConfig("sde", 10, corrector=3)


@pytest.mark.parametrize("name", list(TARGETS))
def test_langevin_moves_reach_and_keep_the_marginal(name):
    """From exact data samples (the t = 0 marginal, not p_t), 300 moves at t = 0.05 reach p_t:
    moments and mode weights of the exact noised samples."""
    mix = TARGETS[name]()
    g = torch.Generator().manual_seed(3)
    t = torch.full((N_SAMPLES,), 0.05, dtype=torch.float64)
    x, _ = mix.sample(N_SAMPLES, generator=g)
    start = moment_features(mix, x).mean(0)
    for _ in range(300):
        x = langevin_step(mix.diffusion, x, mix.score(x, t), t, 0.3, generator=g)
    x0, _ = mix.sample(N_SAMPLES, generator=torch.Generator().manual_seed(4))
    exact, _ = mix.diffusion.perturb(x0, t, generator=torch.Generator().manual_seed(5))
    f, f_exact = moment_features(mix, x), moment_features(mix, exact)
    se = torch.sqrt(f.var(0) / N_SAMPLES + f_exact.var(0) / N_SAMPLES)
    z = ((f.mean(0) - f_exact.mean(0)).abs() - 0.01).clamp_min(0) / se
    assert float(z.max()) < 4, (f.mean(0), f_exact.mean(0))
    assert float((start - f_exact.mean(0)).abs().max()) > 0.05  # the start was not already p_t
    labels = mix.component_posterior(x, t).argmax(1)
    ref = mix.component_posterior(exact, t).argmax(1)
    assert float((torch.bincount(labels, minlength=3) - torch.bincount(ref, minlength=3)).abs().max()) / N_SAMPLES < 0.02


def test_corrector_repairs_a_coarse_chain():
    """Ten ancestral steps alone miss the Euclidean target's moments; the same chain with
    corrector moves at every step meets them (exact score). Local moves cannot move mass
    between modes: on the torus targets, where ten steps already get the mode weights wrong,
    they do not help, so the grid (or ``steps``) is what fixes those."""
    mix = TARGETS["euclidean"]()
    plain = sample_sde(mix.diffusion, mix.score_fn(), N_SAMPLES, steps=10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    corrected = sample_sde(mix.diffusion, mix.score_fn(), N_SAMPLES, steps=10, corrector=LangevinCorrector(steps=20, snr=0.3),
                           generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bad, good = check_samples(mix, plain.x, 1), check_samples(mix, corrected.x, 1)
    assert bad["moment_z"] > 5, bad
    assert good["moment_z"] < 4 and good["weight_err"] < 0.02, good
    assert plain.nfe == 10 and corrected.nfe == 10 + 20 * 9  # no moves after the last step (to t = 0)


def test_corrector_only_below_t_max_and_counted():
    """Each grid time t_1..t_{N-1} at or below t_max is evaluated once by the predictor and
    ``steps`` times by the corrector; times above it once; the count is the config's."""
    mix = TARGETS["euclidean"]()
    config = SamplerConfig("sde", 50, 3.0, corrector=LangevinCorrector(steps=2, snr=0.1, t_max=0.3))
    calls = []

    def score(x, t):
        calls.append(float(t[0]))
        return mix.score(x, t)

    _, nfe = config.sample(mix.diffusion, score, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    counts = {t: calls.count(t) for t in set(calls)}
    assert len(counts) == 50
    assert all(n == (3 if t <= 0.3 else 1) for t, n in counts.items()), counts
    assert sum(n == 3 for n in counts.values()) > 10
    assert nfe == len(calls) == config.evaluations
