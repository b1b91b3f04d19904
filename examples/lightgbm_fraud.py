"""A LightGBM model, governed end to end: record, evaluate, check, approve, promote, decide.

python examples/lightgbm_fraud.py [PROJECT_HOME] [ALIAS]
"""

import sys

import lightgbm as lgb
from _data import FEATURES, TARGET, project_and_data

project, X, y = project_and_data()
alias = sys.argv[2] if len(sys.argv) > 2 else "champion"
params = {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 15}


def fit(X, y):
    """The recipe: backtests call it again on every earlier window."""
    model = lgb.LGBMClassifier(**params, random_state=0, deterministic=True, n_jobs=1, verbose=-1)
    return model.fit(X, y)


with project.start_run(data=["cards"], params=params, seed=0) as run:
    model = fit(X, y)
    run.log_model(model, features=FEATURES, target=TARGET)  # LightGBM text model in the CAS

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
