"""Model-driven work, one layer above :mod:`digmat.models`: what users do with a trained model.

- :mod:`digmat.tasks.sampling` — the main job: equilibrium adsorbate configurations on a slab,
  grouped into sites with probabilities (:func:`sample_adsorbates`), with calculator-verified
  populations (``AdsorptionResult.refine`` / ``.reweight``);
- :mod:`digmat.tasks.adsorption_profile` — where a model loses the reference's site
  populations: its denoising errors beside the reference's Bayes-optimal denoiser, and samplers
  that switch between the two at a noise level;
- :mod:`digmat.tasks.density` — log-densities, in-plane density maps and latent paths;
- :mod:`digmat.tasks.datasets` — the adsorption training dataset (LMDB records → model states);
- :mod:`digmat.tasks.adsorbate_energy` — a calculator's energy of adsorbate states (differentiable
  through its forces), for samplers and training from an energy alone;
- ``peptide_*`` — peptide references as training data, ensembles from sequences;
- ``ligand_*`` — ligand poses: reference data and training (``ligand_data``), sampling and binding
  modes (``ligand_sampling``), scores against crystal, PoseBusters and references (``ligand_eval``),
  and the denoising profile against the references' Bayes-optimal denoiser (``ligand_profile``).

Imports flow downwards only: ``tasks`` uses ``models``, ``systems``, ``adsorption`` (the
torch-free data engine), ``data`` and ``core``; nothing below imports ``tasks``.
"""
