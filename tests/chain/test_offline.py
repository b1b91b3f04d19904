"""Pieces that need no chain: key derivation, the revert decoder, CIDs, RPC reachability,
and the committed artifacts matching a fresh compile."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

from ledgerml.chain import ROLES, Chain, ContractRevert, cid_sha256_digest, derive_accounts
from ledgerml.chain._artifacts import ARTIFACTS_DIR, CONTRACT_NAMES, all_artifacts
from ledgerml.chain._revert import RevertDecoder, revert_data_from_exception
from ledgerml.chain.evm import derive_private_key, intrinsic_gas
from ledgerml.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_role_accounts_are_derived_from_the_seed() -> None:
    seed = bytes(range(32))
    a, b = derive_accounts(seed), derive_accounts(seed)
    assert {r: x.address for r, x in a.items()} == {r: x.address for r, x in b.items()}
    assert len({x.address for x in a.values()}) == len(ROLES)
    other = derive_accounts(bytes(32))
    assert a["admin"].address != other["admin"].address
    import hmac

    expected = hmac.new(seed, b"ledgerml/chain/account/validator", hashlib.sha256).digest()
    assert derive_private_key(seed, "validator") == expected
    # eth-tester's public default key 0x...01 is never one of ours
    assert all(k != (1).to_bytes(32, "big") for k in (derive_private_key(seed, r) for r in ROLES))
    with pytest.raises(InputError) as exc:
        derive_private_key(seed, "root")
    assert exc.value.field == "role"


def _decoder() -> RevertDecoder:
    return RevertDecoder(a.abi for a in all_artifacts())


def test_decoder_handles_every_backend_shape() -> None:
    sel = keccak(text="RuleFailed(bytes32,uint256,uint256)")[:4]
    data = sel + encode(["bytes32", "uint256", "uint256"], [b"auprc".ljust(32, b"\0"), 5, 7])
    # eth-tester: bytes repr inside the message; web3/anvil: hex in .data
    tester_exc = Exception(f"execution reverted: {data!r}")
    web3_exc = Exception("execution reverted", data)
    web3_exc.data = "0x" + data.hex()  # type: ignore[attr-defined]
    for exc in (tester_exc, web3_exc):
        got = revert_data_from_exception(exc)
        assert got == data
        rev = _decoder().decode(got)
        assert rev.name == "RuleFailed" and rev.error_args["value"] == 5
        assert "metric auprc = 0.000005 does not meet threshold 0.000007" in rev.message


def test_decoder_inherited_standard_and_unknown_errors() -> None:
    sel = keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4]
    role = keccak(text="MONITOR_ROLE")
    data = sel + encode(["address", "bytes32"], ["0x" + "ab" * 20, role])
    rev = _decoder().decode(data)
    assert rev.name == "AccessControlUnauthorizedAccount" and "lacks role monitor" in rev.message
    err = bytes.fromhex("08c379a0") + encode(["string"], ["plain reason"])
    assert _decoder().decode(err).message == "plain reason"
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert "overflow" in _decoder().decode(panic).message
    assert _decoder().decode(b"\xde\xad\xbe\xef").name == "UnknownError"
    assert _decoder().decode(b"").name == "Reverted"
    assert isinstance(_decoder().decode(b""), ContractRevert)


def test_cid_digest() -> None:
    # the CID that `ipfs add --cid-version 1` gives the 5 bytes "hello"
    cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert cid_sha256_digest(cid) == hashlib.sha256(b"hello").digest()
    for bad in (
        "",
        "Qmabc",
        "bafkrei",
        "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye1",
    ):
        with pytest.raises(InputError) as exc:
            cid_sha256_digest(bad)
        assert exc.value.field == "cid"


def test_intrinsic_gas() -> None:
    assert intrinsic_gas(b"", create=False) == 21_000
    assert intrinsic_gas(b"\x01" * 100, create=False) == 21_000 + 10 * 400  # EIP-7623 floor
    assert intrinsic_gas(b"\x00" * 64, create=True) == 21_000 + 4 * 64 + 32_000 + 4


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_unreachable_rpc_url_is_an_input_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(InputError) as exc:
        Chain.connect(url, bytes(32), timeout_s=2)
    assert exc.value.field == "chain.rpc_url" and url in str(exc.value)
    for bad in ("127.0.0.1:8545", "ftp://x", "ws://127.0.0.1:1"):
        with pytest.raises(InputError) as exc:
            Chain.connect(bad, bytes(32))
        assert exc.value.field == "chain.rpc_url"


def test_artifacts_match_a_fresh_compile(tmp_path: Path) -> None:
    """Byte-for-byte: the committed artifacts are what the pinned solcjs makes of the sources."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (only needed to recompile)")
    assert (REPO / "tools/solc/node_modules/solc").is_dir(), (
        "tools/solc/node_modules missing: run `make chain-test-setup`"
    )
    proc = subprocess.run(
        [node, str(REPO / "tools/solc/compile.js"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    assert fresh == sorted(f"{n}.json" for n in CONTRACT_NAMES)
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (ARTIFACTS_DIR / name).read_bytes(), name
    meta = json.loads((ARTIFACTS_DIR / "ModelRegistry.json").read_text())
    assert meta["compiler"]["evmVersion"] == "prague"
    assert meta["compiler"]["version"].startswith("0.8.")
    sources = meta["sourcesSha256"]
    own = REPO / "src/ledgerml/chain/contracts/ModelRegistry.sol"
    assert sources["contracts/ModelRegistry.sol"] == hashlib.sha256(own.read_bytes()).hexdigest()
