"""The headline: the textbook's MF-vs-softmax table, each claim judged from measured numbers.

Each report section (``reports/sections/``) declares its claims (``CLAIMS``, each with its
``row`` in the headline) and judges them (``judge(claim, results)``); the headline takes every
section's claims in row order. The rules and thresholds are :mod:`~mfsoftmax.reports.judge`'s.
"""

from __future__ import annotations

import warnings

from mfsoftmax.reports import fmt
from mfsoftmax.reports import sections as measured
from mfsoftmax.reports.judge import ClaimResult, missing
from mfsoftmax.reports.tables import Folded, keyed_table
from mfsoftmax.results.vocabulary import FAMILY_LABEL, FAMILY_WORD


def _registry() -> list:
    """``(claim, judge)`` of every section's claims, in headline row order."""
    pairs = [(c, m.judge) for m in measured.modules() for c in getattr(m, "CLAIMS", ())]
    return sorted(pairs, key=lambda p: p[0].row)


#: every section's claims, in headline order
CLAIMS = tuple(c for c, _ in _registry())
#: claim key -> its section's ``judge(claim, results)``
JUDGES = {c.key: judge for c, judge in _registry()}


def headline(results: dict) -> list[ClaimResult]:
    """One ClaimResult per textbook claim, in the order of CLAIMS."""
    out = []
    for c in CLAIMS:
        try:
            out.append(JUDGES[c.key](c, results))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            warnings.warn(f"claim {c.key!r}: cannot read its figures: {exc!r}", stacklevel=2)
            out.append(missing(c, {}, {}, f"figures unreadable: {type(exc).__name__} {exc}"))
    return out


def headline_table(runs, labels):
    """The headline as a table: one row per claim, each family's figure, the winner and the
    verdict (short, its full text folded below, its sparkline beside it)."""
    per_run = [{} for _ in runs]
    for i, results in enumerate(runs):
        for res in headline(results):
            c = res.claim
            k = (c.title, f"MF: {c.textbook_mf}.\nSoftmax: {c.textbook_softmax}.\n"
                          f"Expects {FAMILY_LABEL[c.expected]} ahead.", c.figure)
            per_run[i][k] = {
                "MF (WALS)": _fig(res, "mf"), "Softmax DNN": _fig(res, "softmax"),
                "winner": {**FAMILY_WORD, None: fmt.DASH}[res.winner],
                "verdict": Folded(res.short, "verdict-" + res.verdict.replace(" ", "-"), res.line,
                                  i, f"glance_{c.key}"),
            }
    t = keyed_table("headline", "The textbook table, measured", ["claim", "textbook", "measured as"], per_run,
                    labels, columns=["MF (WALS)", "Softmax DNN", "winner", "verdict"])
    return t


def _fig(res, fam):
    if fam not in res.figures:
        return ("not measured", "fig")
    model = res.models.get(fam)
    return (res.figures[fam] + (f" [{model}]" if model else ""), "fig")
