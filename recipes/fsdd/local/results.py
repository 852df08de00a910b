#!/usr/bin/env python3
"""Print the FSDD results table from the recipe's metrics files and write exp/fsdd/metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

exp = Path(sys.argv[1] if len(sys.argv) > 1 else "exp/fsdd")
exp.mkdir(parents=True, exist_ok=True)


def load(name, file="metrics.json"):
    path = exp / name / file
    return json.loads(path.read_text()) if path.exists() else None


rows, summary = [], {}
for task, name in (("digits, official split, session front end, one GMM", "digits"),
                   ("digits, official split, defaults front end, one GMM", "digits-defaults-gmm"),
                   ("digits, official split, defaults (3 HMM states)", "digits-defaults"),
                   ("digits, official split, defaults + MMI", "digits-defaults-mmi"),
                   ("speaker id, official split", "speakers")):
    m = load(name)
    if m:
        rows.append((task, f"{100 * m['accuracy']:.2f} %", f"{m['n'] - len(m['errors'])}/{m['n']}"))
        summary[name] = {"accuracy": m["accuracy"], "n": m["n"]}
for suffix, file, task, key in (("-gmm", "metrics.json", "leave-one-speaker-out, one GMM (mean)", "digits_loso_gmm"),
                                ("", "metrics.json", "leave-one-speaker-out, defaults (mean)", "digits_loso"),
                                ("-mmi", "metrics.json", "leave-one-speaker-out, defaults + MMI (mean)",
                                 "digits_loso_mmi"),
                                ("", "metrics.adapt.json", "  defaults adapted to the held-out speaker",
                                 "digits_loso_adapted")):
    folds = sorted(p.parent.name for p in exp.glob(f"loso-*{suffix}/{file}")
                   if p.parent.name.count("-") == 1 + suffix.count("-"))
    if folds:
        accs = {f.split("-")[1]: load(f, file)["accuracy"] for f in folds}
        mean = sum(accs.values()) / len(accs)
        rows.append((task, f"{100 * mean:.2f} %", " ".join(f"{s}:{100 * a:.1f}" for s, a in accs.items())))
        summary[key] = {"mean_accuracy": mean, "folds": accs}
(exp / "metrics.json").write_text(json.dumps(summary, indent=1))
width = max(len(r[0]) for r in rows) if rows else 10
print(f"\n{'FSDD task':<{width}}  {'accuracy':>9}  detail")
for task, acc, detail in rows:
    print(f"{task:<{width}}  {acc:>9}  {detail}")
