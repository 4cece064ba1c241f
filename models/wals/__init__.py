"""WALS (weighted matrix factorization), one module per concern:

- :mod:`.model`: :class:`WALS`, the model API (parameters, fit, fold-in, scoring, cold start,
  persistence);
- :mod:`.engines`: the factory choosing the engine that fits, one module each:
  :mod:`.implicit_cpu`, :mod:`.implicit_gpu`, :mod:`.direct` (exact ALS in numpy),
  :mod:`.spark` (Spark MLlib, with :mod:`.spark_session` and :mod:`.spark_settings`);
- :mod:`.linalg`: the objective and the fold-in solves; :mod:`.features`: the feature-average
  cold-start heuristic.
"""

from .model import WALS

__all__ = ["WALS"]
