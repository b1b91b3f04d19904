"""XGBoost through its scikit-learn API (XGBClassifier), governed end to end.

python examples/xgboost_sklearn.py [PROJECT_HOME] [ALIAS]
"""

import sys

from _data import FEATURES, TARGET, project_and_data
from xgboost import XGBClassifier

project, X, y = project_and_data()
alias = sys.argv[2] if len(sys.argv) > 2 else "champion"
params = {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1}


def fit(X, y):
    """The recipe: backtests call it again on every earlier window."""
    return XGBClassifier(**params, random_state=0, n_jobs=1, tree_method="hist").fit(X, y)


with project.start_run(data=["cards"], params=params, seed=0) as run:
    model = fit(X, y)
    run.log_model(model, features=FEATURES, target=TARGET)  # the booster's UBJSON in the CAS

evaluation = project.evaluate(run.model, data="cards_test")
print("auprc", evaluation.metrics["auprc"], "baselines", sorted(evaluation.baselines))
backtest = project.backtest(run.model, fit=fit, folds=3)  # the recipe on each rolling-origin fold
print("backtest: worst FP ratio vs logistic", backtest.summary["worst_fp_ratio_vs_logreg"])
check = project.check(run.model, pack="fraud-model")
print("check passed:", check.passed)
if not check.passed:  # the contract would refuse promotion, naming the same rules
    raise SystemExit(f"not promoted: failed {', '.join(check.failed)}")
project.approve(run.model, role="risk_approver")
project.approve(run.model, role="compliance_approver")
project.promote(run.model, alias=alias)
decision = project.decide(dict(X.iloc[0]), alias=alias)
print(decision.outcome, decision.score, decision.reasons)
print("verified:", project.verify().ok)
