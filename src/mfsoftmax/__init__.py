"""mfsoftmax: WALS matrix factorization vs softmax DNN recommenders, side by side.

Subpackages
-----------
mfsoftmax.cli        The `mfsoftmax` command (one module per command that is only CLI).
mfsoftmax.results    The results.json contract, shared by the writer and the readers.
mfsoftmax.datasets   Interactions, the dataset registry, splits and protocols.
mfsoftmax.models     RecommenderBase and the models (popularity, WALS, softmax DNN).
mfsoftmax.evaluation The shared full-ranking evaluation harness.
mfsoftmax.bench      The suite (the writer of results.json), configs, baselines, `ab`.
mfsoftmax.reports    The comparison report (`mfsoftmax report`), a reader.
mfsoftmax.compare    `mfsoftmax compare`, a reader of two results.json files.
mfsoftmax.history    `mfsoftmax history`, gated figures over commits, a reader.
"""

__version__ = "0.1.0"
