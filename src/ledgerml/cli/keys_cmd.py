"""`ledgerml keys show`: the public keys outsiders pin to verify this log."""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from ledgerml.cli._common import console, print_json, project
from ledgerml.ledger.project import log_keys

keys_app = typer.Typer(help="Public keys of this project.", no_args_is_help=True)


@keys_app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the log's public keys (PEM) and signed-note verifier key strings."""
    keys = log_keys(project(ctx))
    pems = {
        "ed25519": keys.ed25519.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    }
    if keys.mldsa44 is not None:
        pems["ml-dsa-44"] = (
            keys.mldsa44.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    info = {
        "origin": keys.origin,
        "actor": keys.actor,
        "post_quantum": keys.mldsa44 is not None,
        "verifier_keys": [v.vkey() for v in keys.note_verifiers],
        "public_keys_pem": pems,
    }
    if as_json:
        print_json(info)
        return
    console.print(f"origin: {keys.origin}", highlight=False)
    for v in info["verifier_keys"]:
        console.print(f"verifier key: {v}", soft_wrap=True, highlight=False)
    for name, pem in pems.items():
        console.print(f"{name} public key:\n{pem}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
