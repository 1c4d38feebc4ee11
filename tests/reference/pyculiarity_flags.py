"""pyculiarity's flags for the S-H-ESD reference test (tests/tests/pyculiarity.rs).

Reads a JSON list of cases from stdin, each {values, period, max_anoms, alpha, direction,
threshold, longterm_period}, and prints a JSON list with, per case, {"flags": [...]}
(sorted, distinct sample indices) or {"error": "..."}.
"""
import json
import sys
import traceback
import warnings

# pyculiarity 0.0.7 on pandas 1.5 uses several deprecated calls; their warnings are noise.
warnings.simplefilter("ignore")

import pandas as pd  # noqa: E402
from pyculiarity import detect_vec  # noqa: E402


def flags(case):
    result = detect_vec(
        pd.Series(case["values"]),
        period=case["period"],
        max_anoms=case["max_anoms"],
        alpha=case["alpha"],
        direction=case["direction"],
        threshold=case.get("threshold"),
        longterm_period=case.get("longterm_period"),
    )
    anoms = result["anoms"]
    if anoms is None or len(anoms) == 0:
        return []
    # Pieces overlap by one sample, so a flag can be reported twice.
    return sorted({int(t) for t in anoms.timestamp})


out = []
for case in json.load(sys.stdin):
    try:
        out.append({"flags": flags(case)})
    except Exception as e:  # reported per case; the test decides
        where = traceback.extract_tb(e.__traceback__)[-1]
        out.append({"error": f"{type(e).__name__}: {e} ({where.filename}:{where.lineno})"})
json.dump(out, sys.stdout)
