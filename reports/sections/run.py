"""The Run section: each stage's status, time and memory, the run's metadata (dataset, machine,
packages, threads) and its resolved config (results.json ``stages``, ``run``, ``dataset``).
"""

from __future__ import annotations

import json
import re

from mfsoftmax.reports import fmt
from mfsoftmax.reports.tables import keyed_table

KEY = "run"
TITLE = "Run"
INTRO = ""
PLOTS = ()


def tables(runs, labels) -> list:
    """The stages, then the metadata (the config blocks follow them: :func:`config_blocks`)."""
    return [stages_table(runs, labels), metadata_table(runs, labels)]


def stages_table(runs, labels):
    per_run = []
    for results in runs:
        rows = {}
        for stage, st in (results.get("stages") or {}).items():
            status = st.get("status", "?")
            rows[(stage,)] = {
                "status": (status, "failed" if status != "ok" else "ok"),
                "wall": fmt.seconds(st.get("wall_s")),
                "error": _short(st.get("error") or st.get("reason")) or fmt.DASH,
            }
            if fmt.is_num(st.get("budget_s")):  # columns shown only where some stage has them
                rows[(stage,)]["budget"] = fmt.seconds(st["budget_s"])
            if fmt.is_num(st.get("peak_rss_mb")):
                rows[(stage,)]["peak RSS"] = f"{st['peak_rss_mb'] / 1024:.2f} GiB"
        per_run.append(rows)
    return keyed_table("stages", "Stages", ["stage"], per_run, labels,
                       columns=["status", "wall", "budget", "peak RSS", "error"],
                       note="A failed stage's sections are missing from this report, not estimated. "
                            "Peak RSS: the process tree's during the stage; budget: its time budget "
                            "([budgets]), where one was set.")


def _short(text, n=300) -> str:
    if not text:
        return ""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def metadata_table(runs, labels):
    per_run = []
    for results in runs:
        run, ds = results.get("run", {}), results.get("dataset", {})
        machine, threads = run.get("machine", {}), run.get("threads", {})
        fields = [
            ("dataset", ds.get("name")), ("users", fmt.count(ds.get("n_users"))),
            ("items", fmt.count(ds.get("n_items"))), ("interactions", fmt.count(ds.get("n_interactions"))),
            ("density", fmt.num(ds["density"]) if fmt.is_num(ds.get("density")) else None),
            ("protocol", ds.get("protocol")),
            ("k", ", ".join(str(k) for k in ds["k"]) if ds.get("k") else None),
            ("run id", run.get("id")), ("started", run.get("started_at")),
            ("finished", run.get("finished_at")), ("git commit", run.get("git_commit")),
            ("seed", run.get("seed")), ("python", run.get("python")),
        ]
        fields += [(f"package {k}", v) for k, v in (run.get("packages") or {}).items()]
        fields += [("cpu", machine.get("cpu")), ("cores", machine.get("cores")),
                   ("memory", f"{machine['memory_gb']} GB" if fmt.is_num(machine.get("memory_gb")) else None),
                   ("gpu", machine.get("gpu") or ("none" if "gpu" in machine else None))]
        fields += [(f"threads {k}", v) for k, v in threads.items()]
        gflops = (run.get("calibration") or {}).get("matmul_gflops")
        fields.append(("matmul calibration", f"{fmt.num(gflops)} GFLOP/s" if fmt.is_num(gflops) else None))
        per_run.append({(name,): {"value": str(v)} for name, v in fields if v is not None})
    return keyed_table("metadata", "Run metadata", ["field"], per_run, labels)


def config_blocks(runs) -> list:
    """(label, pretty JSON) of each run's resolved config."""
    return [(i, json.dumps(r.get("run", {}).get("config", {}), indent=2, sort_keys=True))
            for i, r in enumerate(runs) if r.get("run", {}).get("config")]
