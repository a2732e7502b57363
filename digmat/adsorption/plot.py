"""Top view of a surface with sampled adsorbate positions coloured by site (DiG Fig. 4 style)."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np


def plot_sites(result, fh: BinaryIO, *, dpi: int = 130) -> None:
    """Draw ``result`` (an :class:`~digmat.tasks.sampling.AdsorptionResult`) as a PNG into ``fh``.

    Surface atoms (tag 1) are grey discs over a 2 x 2 tiling of the cell (the dashed outline is the cell); each sample's binding
    atom is a dot coloured by its site group; the legend gives each site's kind and
    probability with its 95 % interval.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = result.configurations
    first = configs[0]
    cell = first.cell.array
    tags = first.get_tags()
    surface = first.positions[tags == 1]
    fig, ax = plt.subplots(figsize=(7.0, 6.4))
    for i in range(0, 2):
        for j in range(0, 2):
            shift = i * cell[0] + j * cell[1]
            ax.scatter(surface[:, 0] + shift[0], surface[:, 1] + shift[1], s=140, c="#d9d9d9", edgecolors="#8c8c8c", zorder=1)
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ cell[:2, :2]
    ax.plot(corners[:, 0], corners[:, 1], "k--", lw=0.8, zorder=2)
    colours = plt.get_cmap("tab10")
    binding = [int(np.flatnonzero(a.get_tags() == 2)[0]) for a in configs]
    for site in result.sites:
        members = [k for k, a in enumerate(configs) if a.info.get("site") == site.label]
        if not members:
            continue
        pts = []
        for k in members:
            anchor_idx = configs[k].info.get("binding_index", binding[k])
            p = configs[k].positions[anchor_idx]
            frac = np.linalg.solve(cell[:2, :2].T, p[:2])
            pts.append(np.mod(frac, 1.0) @ cell[:2, :2])
        pts = np.array(pts)
        lo, hi = site.interval
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=colours(site.label % 10), zorder=3,
                   label=f"{site.kind} ({'-'.join(site.binding_symbols) or 'unbound'}): {site.probability:.2f} [{lo:.2f}, {hi:.2f}]")
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"{result.system} at {result.temperature:g} K — {len(configs)} samples")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, frameon=False, ncol=1)
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=dpi)
    plt.close(fig)
