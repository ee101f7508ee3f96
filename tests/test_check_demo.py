"""scripts/check_demo.py reads every row of the README's demo table and flags a changed value."""

import copy
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_demo", ROOT / "scripts" / "check_demo.py")
check_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_demo)


def _results_matching(readme: str) -> dict:
    """A results.json whose figures are the README's, parsed back by hand."""
    rows = check_demo.published(readme)
    accuracy, ci = (float(x) / 100 for x in rows["5-way 1-shot accuracy"][:-2].split(" ± "))
    p1, rp, mapr = (float(x[:-2]) / 100 for x in rows["retrieval precision@1"].split(" / "))
    auc, eer = rows["verification ROC AUC"].split(" / ")
    return {
        "episodes": {"5-way 1-shot (seeded)": {"accuracy": accuracy, "ci95": ci}},
        "knn": {
            "accuracy": float(rows["kNN accuracy"][:-2]) / 100,
            "precision_at_1": p1,
            "r_precision": rp,
            "map_at_r": mapr,
        },
        "verification": {"auc": float(auc), "eer": float(eer[:-2]) / 100},
    }


def test_the_readme_table_is_read_and_a_changed_figure_is_flagged() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    results = _results_matching(readme)
    assert check_demo.compare(results, readme) == []
    worse = copy.deepcopy(results)
    worse["verification"]["auc"] -= 0.01
    [difference] = check_demo.compare(worse, readme)
    assert difference.startswith("verification ROC AUC: README says")
