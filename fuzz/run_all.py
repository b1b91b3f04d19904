"""Run every atheris target for a fixed time each; print and save executions and findings.

    .venv/bin/python fuzz/run_all.py [--seconds 300] [--only note,tile]

Each target runs in its own process (libFuzzer owns the process), with its corpus in
fuzz/corpus/<target>/ (kept between runs, not committed) and crashes in
fuzz/findings/<target>/. Writes fuzz/results.json: per target the executions, the
coverage reached, and the crash files.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["note", "entry", "proof", "tile", "score", "bundle"]


def run_target(name: str, seconds: int) -> dict[str, object]:
    corpus, findings = HERE / "corpus" / name, HERE / "findings" / name
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        subprocess.run(
            [sys.executable, str(HERE / "fuzz_targets.py"), name, "--seeds", str(corpus)],
            check=True,
            capture_output=True,
        )
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_targets.py"),
            name,
            f"-max_total_time={seconds}",
            "-print_final_stats=1",
            f"-artifact_prefix={findings}/",
            "-rss_limit_mb=4096",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    log = done.stdout + done.stderr
    (findings / "last-run.log").write_text(log[-200_000:])
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"cov: (\d+)", log)
    return {
        "target": name,
        "seconds": round(time.monotonic() - started, 1),
        "executions": int(execs[-1]) if execs else None,
        "coverage_edges": int(cov[-1]) if cov else None,
        "exit": done.returncode,
        "findings": sorted(p.name for p in findings.glob("crash-*")),
        "corpus_files": sum(1 for _ in corpus.iterdir()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--only", default=",".join(TARGETS))
    args = ap.parse_args()
    results = []
    for name in args.only.split(","):
        result = run_target(name, args.seconds)
        print(json.dumps(result), flush=True)
        results.append(result)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
