"""`ledgerml keys show`: the public keys outsiders pin to verify this log."""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from ledgerml.cli._common import console, err_console, print_json, project
from ledgerml.errors import InputError
from ledgerml.ledger.project import log_keys, rotate_log_keys

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
    verifier_keys = [v.vkey() for v in keys.note_verifiers]
    info = {
        "origin": keys.origin,
        "actor": keys.actor,
        "post_quantum": keys.mldsa44 is not None,
        "verifier_keys": verifier_keys,
        "public_keys_pem": pems,
    }
    if as_json:
        print_json(info)
        return
    console.print(f"origin: {keys.origin}", highlight=False)
    for v in verifier_keys:
        console.print(f"verifier key: {v}", soft_wrap=True, highlight=False)
    for name, pem in pems.items():
        console.print(f"{name} public key:\n{pem}", highlight=False)


@keys_app.command("api")
def api(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="scorer, auditor or admin.")],
    new: Annotated[
        bool, typer.Option("--new", help="Rotate: replace the role's generated key first.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the decision service's API key(s) for ROLE; --new rotates the generated one."""
    from ledgerml.config import load_config
    from ledgerml.crypto.api_keys import API_ROLES, rotate_api_key
    from ledgerml.serving.app import load_api_keys

    if role not in API_ROLES:
        raise InputError(f"must be one of {', '.join(API_ROLES)}", field="--role")
    paths = project(ctx)
    serving = load_config(paths).get("serving", {})
    in_config = role in serving.get("api_keys", {})
    source = "config.toml [serving.api_keys]" if in_config else str(paths.api_keys_file)
    if new:
        if in_config:
            raise InputError(
                "this role's key is set in config.toml [serving.api_keys], which replaces the "
                "generated one: change it there",
                field="--role",
            )
        rotate_api_key(paths.keys, role)
    keys = load_api_keys(paths, serving).get(role)
    if not keys:
        raise InputError(
            "this project has no key for the role (made before `init` generated them): "
            "create one with --new",
            field="--role",
        )
    if as_json:
        print_json({"role": role, "keys": keys, "source": source, "rotated": new})
    else:
        for key in keys:  # plain lines, so KEY=$(ledgerml keys api --role scorer) works
            typer.echo(key)
    if new:
        err_console.print(
            f"new {role} key written to {source}; restart `ledgerml serve` to use it "
            "(the old key is refused from then on)",
            highlight=False,
        )


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the log; no personal data).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replace the log key: the old key signs a `key.rotated` entry naming the new one.

    Old checkpoints keep verifying with the old key, kept as keys/log-*.retired-*.pem.
    Restart running writers (`ledgerml serve`): they refuse to write with the old key.
    """
    done = rotate_log_keys(project(ctx), reason=reason)
    info = {
        "index": done.index,
        "old_verifier_keys": done.old_verifiers,
        "new_verifier_keys": done.new_verifiers,
        "retired_key_files": done.retired_files,
    }
    if as_json:
        print_json(info)
        return
    console.print(f"key.rotated recorded at index {done.index}", highlight=False)
    for v in done.new_verifiers:
        console.print(f"new verifier key: {v}", soft_wrap=True, highlight=False)
    console.print("restart running writers (ledgerml serve): they hold the old key")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
