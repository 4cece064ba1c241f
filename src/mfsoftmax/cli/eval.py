"""Fit one model on one split of one dataset and print the harness metrics.

Examples
--------
  mfsoftmax eval --dataset ml-100k --data-dir ../shared/datasets --protocol strong --model popularity
  mfsoftmax eval --dataset synthetic --protocol holdout --model wals --set dim=32 --set w0=0.1
  mfsoftmax eval --dataset ml-100k --data-dir ../shared/datasets --model wals --set engine=spark
  mfsoftmax eval --model wals --set engine=spark --set spark_master='local-cluster[2,1,1024]' \
      --set 'spark_conf={"spark.executor.memory": "1g"}'

``--set`` values are JSON where they parse (numbers, ``{...}`` tables), strings otherwise. WALS
with ``engine=spark`` needs ``pip install 'mfsoftmax[spark]'`` and a Java runtime. ``--k``
cut-offs and ``--threads`` are integers >= 1 and ``--seed`` >= 0 (exit 2 naming the option
otherwise); a cut-off given twice is evaluated once.
"""

from __future__ import annotations

import inspect
import json
import sys

from mfsoftmax.dataset_args import add_dataset_options, load_from_args, parse_params


def add_arguments(p) -> None:
    p.add_argument("--dataset", default="synthetic", help="registry name or spec (default: synthetic)")
    add_dataset_options(p)
    p.add_argument("--protocol", default="strong", help="holdout, temporal, strong or new-items")
    p.add_argument("--model", default="popularity", help="model name (see mfsoftmax.models.MODELS)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model hyper-parameter (repeatable)")
    p.add_argument("--split", choices=("valid", "test"), default="test", help="which eval set")
    p.add_argument("--k", type=int, nargs="+", default=[10, 20, 50, 100], help="cut-offs")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the model")
    p.add_argument("--threads", type=int, default=1, help="BLAS/torch/implicit threads")
    p.add_argument("--json", action="store_true", help="print JSON")


#: (option, attribute, lowest value) of eval's integer options
INT_OPTIONS = (("--k", "k", 1), ("--threads", "threads", 1), ("--seed", "seed", 0))


def check_options(args) -> str | None:
    """The one-line problem with eval's numeric options (``--k 0``, ``--threads -1``, ``--seed
    -5``), or None; repeated cut-offs are collapsed in order."""
    for flag, attr, low in INT_OPTIONS:
        values = getattr(args, attr)
        for v in values if isinstance(values, list) else [values]:
            if v < low:
                return f"{flag} {v}: must be an integer >= {low}"
    args.k = list(dict.fromkeys(args.k))
    return None


def main(args) -> int:
    problem = check_options(args)  # before the heavy imports and the data
    if problem:
        print(f"mfsoftmax eval: {problem}", file=sys.stderr)
        return 2
    from mfsoftmax.datasets import DatasetError, make_split  # lazy: numpy+scipy, off --help
    from mfsoftmax.evaluation import evaluate  # lazy: numpy+scipy, off --help
    from mfsoftmax.models import MODELS  # lazy: torch (~2-5 s), off --help
    from mfsoftmax.models.params import ParamError  # lazy: torch, off --help
    from mfsoftmax.models.wals.spark_session import SparkUnavailable  # lazy: torch, off --help
    from mfsoftmax.runtime import pin_threads  # lazy: numpy, off --help

    pin_threads(args.threads)
    if args.model not in MODELS:
        print(f"mfsoftmax: unknown model {args.model!r}; known: {', '.join(sorted(MODELS))}", file=sys.stderr)
        return 2
    try:
        data = load_from_args(args, args.dataset)
        split = make_split(data, args.protocol, seed=args.seed)
    except (DatasetError, FileNotFoundError) as exc:
        print(f"mfsoftmax: {exc}", file=sys.stderr)
        return 2
    params = parse_params(args.set)
    cls = MODELS[args.model]
    try:
        cls.check_names(params)  # a parameter of another model: named, with what this one takes
        model = cls(**params, **({"seed": args.seed} if "seed" in _init_params(cls) and "seed" not in params else {}))
    except (TypeError, ValueError) as exc:
        print(f"mfsoftmax: model {args.model}: {exc}", file=sys.stderr)
        return 2
    try:
        model.fit(split.train, valid=split.valid)
    except (SparkUnavailable, ParamError) as exc:  # no pyspark; memory, divergence, Spark master
        print(f"mfsoftmax: model {args.model}: {exc}", file=sys.stderr)
        return 2
    evalset = split.valid if args.split == "valid" else split.test
    metrics = evaluate(model, evalset, ks=args.k, item_popularity=split.train.item_popularity())
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"{data.name} / {split.protocol} / {args.split} ({metrics['n_users']} users) / {model.name}")
    for k in args.k:
        print(f"  k={k:<4} recall {metrics[f'recall@{k}']:.4f}  ndcg {metrics[f'ndcg@{k}']:.4f}  "
              f"precision {metrics[f'precision@{k}']:.4f}  hr {metrics[f'hr@{k}']:.4f}  "
              f"map {metrics[f'map@{k}']:.4f}  coverage {metrics[f'coverage@{k}']:.4f}")
    print(f"  mrr {metrics['mrr']:.4f}")
    engine = getattr(model, "engine", None)
    if engine is not None and getattr(model, "fit_seconds", None) is not None:
        print(f"  fit {model.fit_seconds:.2f}s ({engine} engine)")
    return 0


def _init_params(cls) -> set:
    return set(inspect.signature(cls.__init__).parameters)
