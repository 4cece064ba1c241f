"""How the report judges a claim: the thresholds, the claim and its result, and the rules every
section's verdict uses (a quality gap against its standard errors, a cost ratio, each family's
best model).

No verdict is written by hand: each follows from the figures and the thresholds below, which the
report prints next to the headline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mfsoftmax.reports import fmt
from mfsoftmax.reports.shorten import shorten
from mfsoftmax.results.vocabulary import COMPARED, OTHER, family_of

SE_MULTIPLIER = 2.0     # a quality gap is a win if > 2 se of the gap (paired when recorded)
REL_TOL = 0.05          # quality gap without standard errors: a win if > 5% of the larger value
LEAKAGE_ABS_TOL = 0.01  # leakage gaps below 0.01 (one leaked slot in a hundred) are ties
COST_RATIO = 1.25       # time, latency: a win only if the other side is at least 1.25x slower
EXPONENT_TOL = 0.10     # growth exponents t ~ N^b closer than 0.10 are ties
COLD_MAX_KNOWN = 5      # cold-start figure: mean Recall@10 over n_known <= 5
SERVING_RECALL = 0.95   # serving at each corpus size: each family's fastest point at this recall
SHORT_CHARS = 200       # a headline cell: its verdict and short text (the full text folds below)

THRESHOLDS = {
    "SE_MULTIPLIER": (SE_MULTIPLIER, "a quality gap is a win only if it exceeds this many standard "
                                     "errors of the gap: of the per-user differences (paired) when "
                                     "the run recorded them, else combined from both sides' own"),
    "REL_TOL": (REL_TOL, "without standard errors, a quality gap must exceed this share of the "
                         "larger value"),
    "LEAKAGE_ABS_TOL": (LEAKAGE_ABS_TOL, "leakage@10 gaps below this are ties"),
    "COST_RATIO": (COST_RATIO, "a time or latency is a win only if the other side is this many "
                               "times slower"),
    "EXPONENT_TOL": (EXPONENT_TOL, "growth exponents (t ∝ N^b) closer than this are ties"),
    "COLD_MAX_KNOWN": (COLD_MAX_KNOWN, "cold-start figure = mean Recall@10 over n_known ≤ this"),
    "SERVING_RECALL": (SERVING_RECALL, "serving vs corpus size: each family at its fastest point "
                                       "(exact or an ANN index) with recall@10 vs exact ≥ this "
                                       "(or the best recall both reach), plus its query embedding"),
}


@dataclass(frozen=True)
class Claim:
    """One row of the textbook's table, declared by the report section that judges it."""

    key: str
    title: str
    textbook_mf: str
    textbook_softmax: str
    expected: str  # the family the textbook expects to come out ahead
    figure: str    # what the measured figure is
    row: int = 0   # its place in the headline (rows in ascending order)


@dataclass
class ClaimResult:
    """A claim judged on one run: each family's figure and model, the winner, the verdict."""

    claim: Claim
    figures: dict          # family -> display string (absent family: not measured)
    models: dict           # family -> model name behind the figure
    winner: str | None     # "mf", "softmax", "tie", or None when not measured
    verdict: str           # "confirmed", "not confirmed", "depends", "not measured"
    text: str              # one line, generated from the numbers
    summary: str | None = None  # optional short text a claim may set; else shortened from text

    @property
    def line(self) -> str:
        return self.text if self.verdict == "not measured" else f"{self.verdict}: {self.text}"

    @property
    def short(self) -> str:
        """``line`` within SHORT_CHARS: the headline cell (the full ``line`` goes below it)."""
        return self.short_line(SHORT_CHARS)

    def short_line(self, width: int) -> str:
        """``line`` within ``width`` characters: the verdict word, then ``summary`` or the
        :func:`~mfsoftmax.reports.shorten.shorten` form of ``text``."""
        head = "" if self.verdict == "not measured" else f"{self.verdict}: "
        return head + shorten(self.summary or self.text, width - len(head))


def quality_gap(a, b, se_a=None, se_b=None, abs_tol=0.0, se_gap=None) -> tuple[int, str]:
    """+1 if ``a`` beats ``b`` (higher is better), -1 if ``b`` wins, 0 for a tie; and the rule.

    ``se_gap``, the standard error of the per-user difference (paired: both evaluated on the same
    users), takes precedence over ``hypot(se_a, se_b)``, which ignores that correlation.
    """
    if fmt.is_num(se_gap):
        thr, rule = SE_MULTIPLIER * se_gap, f"{SE_MULTIPLIER:g} paired se"
    elif fmt.is_num(se_a) and fmt.is_num(se_b):
        thr, rule = SE_MULTIPLIER * math.hypot(se_a, se_b), f"{SE_MULTIPLIER:g} se"
    else:
        thr, rule = REL_TOL * max(abs(a), abs(b)), f"{REL_TOL:.0%}"
    if abs_tol > thr:
        thr, rule = abs_tol, f"{abs_tol:g}"
    gap = a - b
    return (0 if abs(gap) <= thr else (1 if gap > 0 else -1)), rule


def cost_gap(a, b) -> tuple[int, float]:
    """+1 if cost ``a`` beats ``b`` (lower is better by COST_RATIO), -1, or 0; and the ratio."""
    if a <= 0 or b <= 0:
        return 0, float("nan")
    ratio = max(a, b) / min(a, b)
    if ratio < COST_RATIO:
        return 0, ratio
    return (1 if a < b else -1), ratio


def verdict_of(claim: Claim, winner: str, win_text: str, tie_text: str, lose_text: str):
    """``(verdict, text)``: "confirmed" with ``win_text`` when ``winner`` is the family the
    claim expects ahead, else "not confirmed" with the tie's or the other family's text."""
    if winner == claim.expected:
        return "confirmed", win_text
    if winner == "tie":
        return "not confirmed", tie_text
    return "not confirmed", lose_text


def missing(claim: Claim, figures: dict, models: dict, what: str) -> ClaimResult:
    """A "not measured" result saying what was missing."""
    return ClaimResult(claim, figures, models, None, "not measured", f"not measured ({what})")


def winner_of(sign: int, fam_a: str = "mf") -> str:
    """"tie" for sign 0, else ``fam_a`` (sign > 0) or the other family."""
    return "tie" if sign == 0 else (fam_a if sign > 0 else OTHER[fam_a])


def best_per_family(results: dict, value, better, figure) -> tuple[dict, dict, dict]:
    """Best model per family (:func:`by_family`), its figure text ``figure(name, value)`` and
    its name, each keyed by family."""
    best = by_family(results, value, better=better)
    figures = {f: figure(n, v) for f, (n, v) in best.items()}
    models = {f: n for f, (n, _) in best.items()}
    return best, figures, models


def by_family(results: dict, value, better=max) -> dict:
    """family -> (model, value) for the model with the best ``value(name, model)`` (not None)."""
    out = {}
    for name, model in results.get("models", {}).items():
        fam = family_of(name, results)
        if fam not in COMPARED:
            continue
        v = value(name, model)
        if v is None:
            continue
        if fam not in out or better(v, out[fam][1]) == v and v != out[fam][1]:
            out[fam] = (name, v)
    return out


def paired_se(results, a, b, metric, section="quality_paired_se", **match):
    """Standard error of the per-user difference between models ``a`` and ``b`` (either order)
    from ``section`` (rows also equal to ``match``, e.g. ``n_known=0``); None when the run did
    not record it."""
    for row in results.get(section, []):
        if {row.get("a"), row.get("b")} == {a, b} and fmt.is_num(row.get(metric)) \
                and all(row.get(k) == v for k, v in match.items()):
            return row[metric]
    return None


def precision_of(results: dict, name: str, row: dict | None = None) -> str:
    """The precision model ``name`` computed in: the sweep ``row``'s or its training row's
    ``precision``, else its params' resolved one; ``fp32`` in files from before the
    ``precision`` option (everything ran in float32 then)."""
    m = results.get("models", {}).get(name) or {}
    for src in (row or {}, m.get("training") or {}):
        if src.get("precision"):
            return str(src["precision"])
    return "fp32"


def precision_note(results: dict, picks: dict, describe=None) -> str:
    """``"; judged in fp32 (wals), bf16 (softmax-x)"``: the precision each judged model ran in
    (``picks``: name -> its sweep row or None); ``describe(name, precision)`` words one model's
    (default ``"<precision> (<name>)"``)."""
    parts = []
    for name, row in picks.items():
        p = precision_of(results, name, row)
        parts.append(describe(name, p) if describe else f"{p} ({name})")
    return "; judged in " + ", ".join(parts)
