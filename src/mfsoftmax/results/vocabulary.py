"""The words results.json is written in, shared by the writer (``bench``, ``models``) and the
readers (``reports``, ``compare``): the model families, their labels, the labels the corpus
sweep writes for them, and the embedding roles. Nothing here changes what a file stores.
"""

from __future__ import annotations

#: every model's ``family`` (``models.<name>.family``; a model class's ``family``)
FAMILIES = ("mf", "softmax", "baseline")
#: the two families the report compares claim by claim, MF first
COMPARED = ("mf", "softmax")
#: the other compared family
OTHER = {"mf": "softmax", "softmax": "mf"}
#: a compared family as a column heading
FAMILY_LABEL = {"mf": "MF (WALS)", "softmax": "Softmax DNN"}
#: a compared family (or a tie) in a sentence or a winner cell
FAMILY_WORD = {"mf": "MF", "softmax": "softmax", "tie": "tie"}

#: the row label ``sweeps.serving_vs_corpus`` writes for each compared family (the sweep's
#: rows are labelled by family, not by a configured model; it says ``dnn`` for softmax)
SWEEP_NAME = {"mf": "mf", "softmax": "dnn"}
#: a corpus-sweep row label back to its family
SWEEP_FAMILIES = {label: fam for fam, label in SWEEP_NAME.items()}

#: what a model's embeddings illustrate in the folding picture (``models.<name>.embedding_role``)
ROLES = ("mf", "no-negatives", "negatives")


def family_of(name: str, results: dict) -> str:
    """The family of model ``name`` as results.json records it (every model's ``family``; the
    corpus sweep's ``mf``/``dnn`` rows), else ``baseline``."""
    fam = results.get("models", {}).get(name, {}).get("family")
    return fam or SWEEP_FAMILIES.get(name, "baseline")


def role_of(name: str, results: dict) -> str | None:
    """What model ``name``'s embeddings illustrate (one of :data:`ROLES`), as the model declared
    it (``models.<name>.embedding_role``). Files written before that key existed fall back to
    the loss the model recorded in its params."""
    m = results.get("models", {}).get(name, {})
    if "embedding_role" in m:
        return m["embedding_role"]
    if m.get("embeddings", {}).get("role"):
        return m["embeddings"]["role"]
    fam = m.get("family")
    if fam == "mf":
        return "mf"
    if fam == "softmax":
        loss = (m.get("params") or {}).get("loss")
        if loss is None:
            return "no-negatives" if "positives-only" in name else "negatives"
        return "no-negatives" if loss == "positives-only" else "negatives"
    return None
