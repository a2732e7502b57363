"""The sampling pipeline's plumbing and its site statistics.

Site assignment is checked against ASE's own site positions (the CLI's files and messages:
``tests/cli/test_adsorb.py``).
"""

import numpy as np
import pytest
from ase.build import add_adsorbate, fcc111

from digmat.adsorption import convert_ase_tags
from digmat.tasks.sampling import summarise_sites


def placed(site, offset=(0.0, 0.0)):
    s = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    add_adsorbate(s, "O", 1.2, site, offset=offset)
    return convert_ase_tags(s)


def test_site_statistics_match_ase_placements():
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    configs = [placed("fcc", (i % 2, i // 2 % 2)) for i in range(6)] + [placed("hcp", (1, 0))] * 3 + [placed("ontop", (0, 1))]
    sites, labels = summarise_sites(slab, configs, len(slab), bootstrap=500)
    kinds = {s.kind: s for s in sites}
    assert set(kinds) == {"hollow-fcc", "hollow-hcp", "ontop"}
    assert kinds["hollow-fcc"].probability == pytest.approx(0.6) and kinds["hollow-hcp"].probability == pytest.approx(0.3)
    lo, hi = kinds["hollow-fcc"].interval
    assert lo < 0.6 < hi
    assert labels.tolist()[:6] == [labels[0]] * 6  # all fcc copies (lattice/symmetry images) merge
    assert kinds["ontop"].binding_symbols == ["Pt"] and len(kinds["hollow-fcc"].binding_symbols) == 3


def test_thermally_displaced_hollow_is_not_called_ontop():
    """0.27 Å off the fcc centre towards one Pt the distance window says 'ontop'; the nearest-site rule keeps fcc."""
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    config = placed("fcc")
    atom = np.argmin(np.linalg.norm(config.positions[: len(slab), :2] - config.positions[-1, :2], axis=1) + 100 * (config.get_tags()[: len(slab)] != 1))
    towards = config.positions[atom, :2] - config.positions[-1, :2]
    config.positions[-1, :2] += 0.27 * towards / np.linalg.norm(towards)
    sites, _ = summarise_sites(slab, [config], len(slab), bootstrap=10)
    assert sites[0].kind == "hollow-fcc"


def test_sampler_config_equals_the_name_and_steps_form(tiny_model):
    """sample_adsorbates(sampler=SamplerConfig(...)) draws what sampler="..."/steps= drew."""
    from digmat.core import SamplerConfig
    from digmat.tasks.sampling import sample_adsorbates

    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    common = {"num_samples": 3, "temperature": 500.0, "seed": 1}
    for config, flat in ((SamplerConfig("sde", 2), {"sampler": "sde", "steps": 2}), (SamplerConfig("ode", 2), {"steps": 2})):
        by_config = sample_adsorbates(slab, "O", tiny_model, sampler=config, **common)
        by_name = sample_adsorbates(slab, "O", tiny_model, **flat, **common)
        assert by_config.sampler == by_name.sampler == config.method
        assert by_config.evaluations == by_name.evaluations == config.evaluations
        for a, b in zip(by_config.configurations, by_name.configurations, strict=True):
            np.testing.assert_array_equal(a.positions, b.positions)
    with pytest.raises(ValueError, match="inside the SamplerConfig"):
        sample_adsorbates(slab, "O", tiny_model, sampler=SamplerConfig("sde", 2), steps=3, **common)


def test_site_kind_populations_and_total_variation():
    from digmat.tasks.sampling import SiteSummary, site_kind_populations, total_variation

    fields = SiteSummary.__dataclass_fields__
    def site(kind, p):
        base = {name: None for name in fields}
        return SiteSummary(**{**base, "kind": kind, "probability": p})

    kinds = site_kind_populations([site("hollow-hcp", 0.2), site("bridge", 0.1), site("hollow-hcp", 0.3), site("ontop", 0.4)])
    assert list(kinds) == ["bridge", "hollow-hcp", "ontop"] and kinds["hollow-hcp"] == pytest.approx(0.5)
    assert total_variation({"a": 0.7, "b": 0.3}, {"a": 0.2, "c": 0.8}) == pytest.approx(0.8)
    assert total_variation(kinds, kinds) == 0.0
