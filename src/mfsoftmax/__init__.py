"""mfsoftmax: WALS matrix factorization vs softmax DNN recommenders, side by side.

Subpackages
-----------
mfsoftmax.datasets   Interactions, the dataset registry, splits and protocols.
mfsoftmax.models     RecommenderBase and the models (popularity, WALS, softmax DNN).
mfsoftmax.evaluation The shared full-ranking evaluation harness.
mfsoftmax.bench      The suite (`mfsoftmax run`), configs, baselines and `compare`.
mfsoftmax.reports    The comparison report (`mfsoftmax report`).
"""

__version__ = "0.1.0"
