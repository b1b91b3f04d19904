"""`ledgerml demo`: the main job on the embedded default, in a fresh folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledgerml.cli._common import EXIT_VERIFY, console, print_json
from ledgerml.demo import run_demo


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        folder: Annotated[
            Path, typer.Option("--dir", help="Folder for the demo project (recreated).")
        ] = Path("ledgerml-demo"),
        synthetic: Annotated[
            bool,
            typer.Option("--synthetic", help="Use a seeded synthetic table, not the ULB data."),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Run the fraud-model demo end to end on the embedded defaults."""
        result = run_demo(
            folder.resolve(),
            synthetic=synthetic,
            say=(lambda _m: None) if as_json else console.print,
        )
        if as_json:
            print_json(
                {
                    "home": str(result.home),
                    "real_data": result.real_data,
                    "dataset_cid": result.dataset_cid,
                    "model_cid": result.model_cid,
                    "metrics": result.metrics,
                    "anchors_checked": result.anchors_checked,
                    "tree_size": result.tree_size,
                    "checkpoint": result.checkpoint,
                    "proved_index": result.proved_index,
                    "proof": result.proof,
                    "proof_ok": result.proof_ok,
                    "verify_ok": result.verify_ok,
                }
            )
        if not (result.proof_ok and result.verify_ok):
            raise typer.Exit(EXIT_VERIFY)
