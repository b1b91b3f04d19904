"""A scikit-learn model converted to ONNX (skl2onnx), served through onnxruntime.

python examples/onnx_from_sklearn.py [PROJECT_HOME] [ALIAS]
"""

import sys

import numpy as np
from _data import FEATURES, TARGET, project_and_data
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier

project, X, y = project_and_data()
alias = sys.argv[2] if len(sys.argv) > 2 else "champion"
params = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.15}


def fit(X, y):
    """The recipe, ending in ONNX: backtests call it again on every earlier window."""
    fitted = GradientBoostingClassifier(**params, random_state=0).fit(X, y)
    # any ONNX graph taking one float tensor and giving probabilities works (torch.onnx too)
    return to_onnx(fitted, X[:1].to_numpy(np.float32), options={id(fitted): {"zipmap": False}})


with project.start_run(data=["cards"], params=params, seed=0) as run:
    onnx_model = fit(X, y)
    run.log_model(onnx_model, features=FEATURES, target=TARGET)

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
