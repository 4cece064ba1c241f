"""One stable colour per model name, shared by every plot of every report."""

from __future__ import annotations

import hashlib

from mfsoftmax.results.vocabulary import SWEEP_NAME

# Fixed colours for the model names the suite uses (MF in blues, softmax variants in warm/other hues).
KNOWN = {
    "popularity": "#7f7f7f",
    "feature-popularity": "#b0b0b0",
    "wals": "#1f77b4",
    "wals-cg": "#17becf",
    "wals-features": "#4c72b0",
    "softmax-full": "#d62728",
    "softmax-sampled-uniform": "#ff7f0e",
    "softmax-sampled-popularity": "#bcbd22",
    "softmax-in-batch": "#8c564b",
    "softmax-hard-negatives": "#2ca02c",
    "softmax-positives-only": "#9467bd",
}

# Aliases used by sweeps (the family rows of serving_vs_corpus: SWEEP_NAME).
ALIASES = {SWEEP_NAME["mf"]: "wals", SWEEP_NAME["softmax"]: "softmax-full", "softmax": "softmax-full"}

# Fallback palette for unknown names (tab20 minus the colours above, roughly).
PALETTE = (
    "#e377c2", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39",
    "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)


def _darken(hex_color: str, factor: float = 0.65) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return "#{:02x}{:02x}{:02x}".format(*(int(c * factor) for c in (r, g, b)))


def model_color(name: str) -> str:
    """The colour of model ``name``: fixed for known names, a hash of the name otherwise.

    ``<name>+gravity`` gets a darker shade of ``<name>``'s colour. The mapping depends on the
    name alone (never on which other models are plotted), so colours match across plots and runs.
    """
    name = ALIASES.get(name, name)
    if name in KNOWN:
        return KNOWN[name]
    if name.endswith("+gravity"):
        return _darken(model_color(name[: -len("+gravity")]))
    digest = hashlib.md5(name.encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def group_color(group: int) -> str:
    """Colour of planted group ``group`` (PCA plots)."""
    tab10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
    return tab10[int(group) % len(tab10)]
