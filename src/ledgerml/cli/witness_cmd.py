"""`ledgerml witness …`: run a C2SP tlog-witness, and publish or check cosigned checkpoints.

Witness side (another bank, the auditor): `init --name NAME`, `add-log VKEY`, `serve --port P`,
`show`. Log side: `publish` (one round of the publisher for this project) and `check`
(verify a checkpoint against a policy). No logic here: see `ledgerml.witness`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerml.cli._common import EXIT_VERIFY, as_path, console, err_console, print_json, project
from ledgerml.errors import InputError

app = typer.Typer(help="Witnesses: cosign other logs' checkpoints; publish ours cosigned.")

DirOption = Annotated[
    str,
    typer.Option(
        "--dir",
        envvar="LEDGERML_WITNESS_DIR",
        help="Witness folder (keys, witness.db; default ./.ledgerml-witness).",
    ),
]
DEFAULT_DIR = ".ledgerml-witness"


def _dir(value: str) -> Path:
    return as_path(value or DEFAULT_DIR).resolve()


@app.command("init")
def init(
    name: Annotated[str, typer.Option("--name", help="Witness key name, e.g. bank-b.example/w")],
    directory: DirOption = DEFAULT_DIR,
    pq: Annotated[bool, typer.Option("--pq", help="Also cosign with ML-DSA-44.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a witness: its Ed25519 key (and ML-DSA-44 with --pq), 0600, and its state."""
    from ledgerml.witness.core import init_witness

    keys = init_witness(_dir(directory), name=name, post_quantum=pq)
    vkeys = [v.vkey() for v in keys.verifiers()]
    if as_json:
        print_json({"dir": str(_dir(directory)), "name": name, "vkeys": vkeys})
        return
    console.print(f"witness {name} created in {_dir(directory)}", highlight=False)
    for v in vkeys:
        console.print(f"verifier key: {v}", highlight=False)


@app.command("add-log")
def add_log(
    vkey: Annotated[str, typer.Argument(help="The log's verifier key (name = its origin).")],
    origin: Annotated[
        str | None, typer.Option("--origin", help="The log's origin, if not the key's name.")
    ] = None,
    directory: DirOption = DEFAULT_DIR,
) -> None:
    """Trust a log's key: the witness will cosign that origin's consistent checkpoints."""
    from ledgerml.witness.core import Witness

    w = Witness.open(_dir(directory))
    try:
        v = w.add_log(vkey, origin)
    finally:
        w.close()
    console.print(f"witnessing {origin or v.name} (key {v.key_id.hex()})", highlight=False)


@app.command("show")
def show(
    directory: DirOption = DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The witness's verifier keys, the logs it trusts and what it last cosigned for each."""
    from ledgerml.witness.core import Witness

    w = Witness.open(_dir(directory))
    try:
        info: dict[str, Any] = {
            "name": w.keys.name,
            "vkeys": [v.vkey() for v in w.keys.verifiers()],
            "logs": [{"origin": o, "vkey": v} for o, v in w.logs()],
            "heads": [
                {"origin": h.origin, "size": h.size, "root": base64.b64encode(h.root).decode()}
                for h in w.heads()
            ],
        }
    finally:
        w.close()
    if as_json:
        print_json(info)
        return
    for v in info["vkeys"]:
        console.print(f"verifier key: {v}", highlight=False)
    for log in info["logs"]:
        console.print(f"log: {log['vkey']}", highlight=False)
    for h in info["heads"]:
        console.print(f"cosigned: {h['origin']} size {h['size']} root {h['root']}", highlight=False)


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 7380,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    directory: DirOption = DEFAULT_DIR,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness v1) until interrupted."""
    if not 1 <= port <= 65535:
        raise InputError("must be 1..65535", field="--port")
    from ledgerml.witness.server import serve_witness

    serve_witness(_dir(directory), host=host, port=port)


@app.command("publish")
def publish(
    ctx: typer.Context,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Policy file (default: [witness] policy).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Send this project's newest checkpoint to the policy's witnesses; exit 1 without quorum."""
    from ledgerml.witness.publisher import publish_once

    report = publish_once(project(ctx), policy_path=policy)
    if as_json:
        print_json(report.to_json())
    else:
        for line in report.lines():
            (console if report.published else err_console).print(line, highlight=False)
    if not report.published:
        raise typer.Exit(EXIT_VERIFY)


@app.command("check")
def check(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint (signed note file).")],
    policy: Annotated[str, typer.Option("--policy", help="Policy file.")],
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", help="Count only cosignatures made in the last SECONDS."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify a checkpoint against a policy: a listed log signed it and the quorum cosigned."""
    from ledgerml.cli.log_cmd import read_input_text
    from ledgerml.errors import VerificationError
    from ledgerml.witness.policy import load_policy

    if max_age is not None and not max_age > 0:
        raise InputError("must be a number of seconds > 0", field="--max-age")
    pol = load_policy(str(as_path(policy)))
    text = read_input_text(as_path(checkpoint), "CHECKPOINT")
    try:
        ok = pol.verify(text, max_age_s=max_age)
    except VerificationError as exc:
        if as_json:
            print_json({"ok": False, "error": str(exc)})
            raise typer.Exit(EXIT_VERIFY) from None
        raise
    result = {"ok": True, "origin": ok.origin, "size": ok.size, "cosigners": list(ok.cosigners)}
    if as_json:
        print_json(result)
    else:
        console.print(
            f"OK {ok.origin} size {ok.size}: cosigned by {', '.join(ok.cosigners) or 'nobody'} "
            f"(quorum {pol.quorum})",
            highlight=False,
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="witness")
