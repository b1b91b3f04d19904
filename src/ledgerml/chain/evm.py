"""The `Chain`: one API over the embedded EVM and any EVM JSON-RPC node.

    from ledgerml.chain.evm import Chain
    with Chain.open(project / "chain", seed) as chain:               # embedded, persistent
        ...
    with Chain.open(project / "chain", seed, rpc_url="http://127.0.0.1:8545") as chain:
        ...                                                         # anvil, Besu, geth

Every transaction is signed locally by a role account derived from the project's seed, carries
an explicit gas limit (estimation would cost a second and third execution), is checked
against the intrinsic gas before sending (anvil silently drops transactions below it), and
by default is dry-run with `eth_call` first so a refusal costs no gas and leaves no failed
transaction behind. Reverts of every kind come out as `ContractRevert`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlparse

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ABI, ABIFunction, ChecksumAddress, Hash32
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import BlockIdentifier, RPCEndpoint, TxParams

from ledgerml.chain._artifacts import Artifact, all_artifacts, load_artifact
from ledgerml.chain._revert import (
    ContractRevert,
    RevertDecoder,
    abi_type,
    is_out_of_gas,
    revert_data_from_exception,
)
from ledgerml.chain._roles import ROLES
from ledgerml.errors import InputError, VerificationError

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_TX_GAS = 30_000_000
DEFAULT_TIP_WEI = 1_000_000_000
RECEIPT_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 10.0

ChainKind = Literal["embedded", "rpc"]


# --------------------------------------------------------------------------- accounts


def derive_private_key(seed: bytes, role: str) -> bytes:
    """Role key = HMAC-SHA256(seed, "ledgerml/chain/account/<role>[/<n>]"), first valid scalar.

    Deterministic, so every process (and every machine holding the project's keys) signs as the
    same accounts, and unrelated to eth-tester's public default keys.
    """
    if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
        raise InputError("must be exactly 32 bytes", field="seed")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (known: {', '.join(ROLES)})", field="role")
    n = 0
    while True:
        label = f"ledgerml/chain/account/{role}" + (f"/{n}" if n else "")
        key = hmac.new(bytes(seed), label.encode(), hashlib.sha256).digest()
        if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            return key
        n += 1  # pragma: no cover - probability ~2^-128


def derive_accounts(seed: bytes) -> dict[str, LocalAccount]:
    """One signing account per role in ROLES."""
    return {r: Account.from_key(derive_private_key(seed, r)) for r in ROLES}


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class DecodedEvent:
    """One log decoded against our ABIs; bytes values are 0x-hex so it prints as JSON."""

    contract: str
    address: str
    name: str
    args: Mapping[str, Any]
    log_index: int


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[DecodedEvent, ...]
    contract_address: ChecksumAddress | None = None

    def events_named(self, name: str) -> tuple[DecodedEvent, ...]:
        return tuple(e for e in self.events if e.name == name)


@dataclass(frozen=True)
class ChainInfo:
    """What `ledgerml chain status` shows: which chain, how far, and the role accounts."""

    kind: str
    chain_id: int
    block_number: int
    url: str | None
    chain_dir: str | None
    accounts: Mapping[str, str]
    balances_wei: Mapping[str, int]


def intrinsic_gas(data: bytes, *, create: bool) -> int:
    """Minimum gas a Prague node accepts for this calldata (incl. EIP-3860 and EIP-7623 floor)."""
    zeros = data.count(0)
    nonzero = len(data) - zeros
    gas = 21_000 + 4 * zeros + 16 * nonzero
    if create:
        gas += 32_000 + 2 * ((len(data) + 31) // 32)
    floor = 21_000 + 10 * (zeros + 4 * nonzero)
    return max(gas, floor)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class _EventSpec:
    contract: str
    name: str
    inputs: tuple[Mapping[str, Any], ...]


def _event_table(artifacts: Sequence[Artifact]) -> dict[bytes, _EventSpec]:
    table: dict[bytes, _EventSpec] = {}
    for art in artifacts:
        for item in art.abi:
            if item.get("type") == "event":
                sig = f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"
                table[keccak(text=sig)] = _EventSpec(art.name, item["name"], tuple(item["inputs"]))
    return table


def _functions(abi: ABI) -> Iterator[ABIFunction]:
    """The function entries of a contract's ABI."""
    for item in abi:
        if "type" in item and item["type"] == "function":
            yield item


def _normalise_address(typ: str, value: Any) -> Any:
    return to_checksum_address(value) if typ == "address" else value


# ------------------------------------------------------------------------------- chain


@dataclass
class _State:
    nonces: dict[str, int] = field(default_factory=dict)
    fee: tuple[float, int, int] | None = None  # (fetched at, max fee, tip)


class Chain:
    """A connection to one EVM chain with the project's role accounts.

    Build it with `Chain.open`, `Chain.embedded` or `Chain.connect`; close it (or use `with`)
    to release the embedded chain's lock.
    """

    def __init__(
        self,
        *,
        w3: Web3,
        kind: ChainKind,
        accounts: Mapping[str, LocalAccount],
        chain_dir: Path | None,
        preflight: bool,
        closer: Any = None,
        url: str | None = None,
    ) -> None:
        self.w3 = w3
        self.kind: ChainKind = kind
        self.accounts: dict[str, LocalAccount] = dict(accounts)
        self.chain_dir = chain_dir
        self.preflight = preflight
        self.url = url
        self._closer = closer
        self._state = _State()
        arts = all_artifacts()
        self.revert_decoder = RevertDecoder(a.abi for a in arts)
        self._events = _event_table(arts)
        self._names_by_address: dict[str, str] = {}
        self._encoders: dict[tuple[str, str, int], tuple[bytes, tuple[str, ...]]] = {}
        self.chain_id: int = int(w3.eth.chain_id)

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(
        cls,
        chain_dir: str | Path,
        seed: bytes,
        rpc_url: str | None = None,
        *,
        preflight: bool = True,
        lock_timeout_s: float = 30.0,
    ) -> Chain:
        """Embedded chain persisted in `chain_dir`, or the node at `rpc_url` if one is given.

        `lock_timeout_s`: how long to wait for another process's embedded-chain lock."""
        if rpc_url:
            return cls.connect(rpc_url, seed, chain_dir=chain_dir, preflight=preflight)
        return cls.embedded(chain_dir, seed, preflight=preflight, lock_timeout_s=lock_timeout_s)

    @classmethod
    def embedded(
        cls,
        chain_dir: str | Path,
        seed: bytes,
        *,
        preflight: bool = True,
        lock_timeout_s: float = 30.0,
    ) -> Chain:
        """Open (or create) the persistent embedded chain in `chain_dir`; holds its lock."""
        from eth_tester import EthereumTester
        from web3.providers.eth_tester import EthereumTesterProvider
        from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

        from ledgerml.chain import _embedded

        accounts = derive_accounts(seed)
        path = Path(chain_dir)
        path.mkdir(parents=True, exist_ok=True)
        lock = _embedded.FileLock(path / "evm.lock", lock_timeout_s)
        db: _embedded.SqliteDB | None = None
        try:
            db = _embedded.SqliteDB(path / "evm.sqlite")
            funded = [bytes.fromhex(a.address[2:]) for a in accounts.values()]
            chain, _created = _embedded.open_chain(db, funded)
            admin = bytes.fromhex(accounts["admin"].address[2:])
            if not _funded_at_genesis(chain, admin):
                raise InputError(
                    f"the embedded chain in {path} was created with other keys; "
                    "use the project's own seed",
                    field="seed",
                )
            backend = _embedded.PersistentBackend(chain, db)
            tester = EthereumTester(backend=backend, auto_mine_transactions=True)
            endpoints = {ns: dict(fns) for ns, fns in API_ENDPOINTS.items()}
            endpoints["eth"]["chainId"] = static_return(_embedded.EMBEDDED_CHAIN_ID)
            w3 = Web3(EthereumTesterProvider(ethereum_tester=tester, api_endpoints=endpoints))
        except BaseException:
            if db is not None:
                db.close()
            lock.release()
            raise

        def closer() -> None:
            try:
                db.close()
            finally:
                lock.release()

        return cls(
            w3=w3,
            kind="embedded",
            accounts=accounts,
            chain_dir=path,
            preflight=preflight,
            closer=closer,
        )

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        seed: bytes,
        *,
        chain_dir: str | Path | None = None,
        preflight: bool = True,
        timeout_s: float = RPC_TIMEOUT_S,
    ) -> Chain:
        """Connect to a JSON-RPC node; unreachable is an InputError before anything is sent."""
        parsed = urlparse(rpc_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InputError(
                f"{rpc_url!r} is not an http(s):// JSON-RPC URL", field="chain.rpc_url"
            )
        accounts = derive_accounts(seed)
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        try:
            w3.eth.chain_id  # noqa: B018 - the reachability probe
        except Exception as exc:
            raise InputError(
                f"cannot reach a JSON-RPC node at {rpc_url} ({type(exc).__name__}: {exc})",
                field="chain.rpc_url",
            ) from exc
        return cls(
            w3=w3,
            kind="rpc",
            accounts=accounts,
            chain_dir=Path(chain_dir) if chain_dir is not None else None,
            preflight=preflight,
            url=rpc_url,
        )

    def close(self) -> None:
        """Release the embedded chain's database and lock (no-op for RPC)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> Chain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -------------------------------------------------------------------- accounts

    def address(self, role: str) -> ChecksumAddress:
        """Checksum address of a role's account."""
        try:
            return self.accounts[role].address
        except KeyError:
            raise InputError(
                f"unknown role {role!r} (known: {', '.join(ROLES)})", field="role"
            ) from None

    def info(self) -> ChainInfo:
        """Chain id, head block and every role account with its balance."""
        return ChainInfo(
            kind=self.kind,
            chain_id=self.chain_id,
            block_number=int(self.w3.eth.block_number),
            url=self.url,
            chain_dir=str(self.chain_dir) if self.chain_dir is not None else None,
            accounts={r: self.address(r) for r in ROLES},
            balances_wei={r: self.balance(r) for r in ROLES},
        )

    def balance(self, role: str) -> int:
        return int(self.w3.eth.get_balance(self.address(role)))

    def fund_roles(self, minimum_wei: int = 10**21) -> list[str]:
        """Give role accounts gas money on a dev node (anvil/hardhat `setBalance`).

        Production chains fund accounts out of band (or run with free gas); there an unfunded
        account is reported as an InputError naming it.
        """
        funded: list[str] = []
        for role in ROLES:
            addr = self.address(role)
            if self.w3.eth.get_balance(addr) >= minimum_wei:
                continue
            ok = False
            for method in ("anvil_setBalance", "hardhat_setBalance"):
                resp = self.w3.provider.make_request(
                    RPCEndpoint(method), [addr, hex(minimum_wei * 10)]
                )
                if "error" not in resp:
                    ok = True
                    break
            if not ok:
                raise InputError(
                    f"account {addr} of role {role} has no funds on chain {self.chain_id} and the "
                    "node cannot set balances; fund it",
                    field="chain.accounts",
                )
            funded.append(role)
        return funded

    # ------------------------------------------------------------------- contracts

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract object for one of our artifacts at `address`."""
        art = load_artifact(name)
        checksum = to_checksum_address(address)
        self._names_by_address[checksum] = art.name
        return self.w3.eth.contract(address=checksum, abi=list(art.abi))

    def deploy(
        self, name: str, args: Sequence[Any] = (), *, role: str = "admin", gas: int
    ) -> TxResult:
        """Deploy one artifact; the result's `contract_address` is where it lives."""
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=list(art.abi), bytecode=art.bytecode)
        data = bytes.fromhex(factory.constructor(*args).data_in_transaction[2:])
        result = self._send(role, None, data, gas, context=f"deploy {name}")
        if result.contract_address is None:
            raise VerificationError(f"deploy {name}: no contract address in the receipt")
        self._names_by_address[result.contract_address] = art.name
        code = self.w3.eth.get_code(result.contract_address)
        if bytes(code) != art.deployed_bytecode:
            raise VerificationError(
                f"deploy {name}: code at {result.contract_address} differs from the artifact"
            )
        return result

    def transact(
        self, contract: Contract, fn: str, args: Sequence[Any], *, role: str, gas: int
    ) -> TxResult:
        """Send `fn(*args)` to `contract` from `role`'s account with an explicit gas limit."""
        data = self._encode_call(contract, fn, args)
        name = self._names_by_address.get(contract.address, "contract")
        return self._send(role, contract.address, data, gas, context=f"{name}.{fn}")

    def _encode_call(self, contract: Contract, fn: str, args: Sequence[Any]) -> bytes:
        """selector + eth_abi.encode: web3's encode_abi re-resolves the ABI on every call."""
        key = (contract.address, fn, len(args))
        spec = self._encoders.get(key)
        if spec is None:
            matches = [
                item
                for item in _functions(contract.abi)
                if item.get("name") == fn and len(item.get("inputs", ())) == len(args)
            ]
            if len(matches) != 1:
                raise InputError(
                    f"{fn} with {len(args)} arguments is not a function of this contract",
                    field="function",
                )
            types = tuple(abi_type(i) for i in matches[0]["inputs"])
            spec = (keccak(text=f"{fn}({','.join(types)})")[:4], types)
            self._encoders[key] = spec
        selector, types = spec
        try:
            return selector + abi_encode(list(types), list(args))
        except Exception as exc:
            raise InputError(f"arguments do not fit {fn}{types}: {exc}", field="args") from exc

    def call(
        self, contract: Contract, fn: str, args: Sequence[Any] = (), *, role: str | None = None
    ) -> Any:
        """Read-only call; a revert comes back as ContractRevert."""
        name = self._names_by_address.get(contract.address, "contract")
        tx: dict[str, Any] = {"from": self.address(role or "admin")}
        try:
            return getattr(contract.functions, fn)(*args).call(tx)
        except (InputError, VerificationError):
            raise
        except Exception as exc:
            data = revert_data_from_exception(exc)
            if data is None and not _looks_like_revert(exc):
                raise VerificationError(f"{name}.{fn}: call failed: {exc}") from exc
            raise self.revert_decoder.decode(data, context=f"{name}.{fn}") from None

    # ---------------------------------------------------------------- transactions

    def _send(self, role: str, to: str | None, data: bytes, gas: int, *, context: str) -> TxResult:
        account = self.accounts.get(role)
        if account is None:
            raise InputError(f"unknown role {role!r} (known: {', '.join(ROLES)})", field="role")
        if not isinstance(gas, int) or isinstance(gas, bool):
            raise InputError("gas limit must be an integer", field="gas")
        need = intrinsic_gas(data, create=to is None)
        if gas < need:
            raise InputError(
                f"{context}: gas limit {gas} is below the intrinsic cost {need}", field="gas"
            )
        if gas > MAX_TX_GAS:
            raise InputError(f"{context}: gas limit {gas} exceeds {MAX_TX_GAS}", field="gas")
        sender = str(account.address)
        call_tx: TxParams = {"from": sender, "data": data, "gas": gas}
        if to is not None:
            call_tx["to"] = to
            if self.preflight:
                self._dry_run(call_tx, "latest", context)
        max_fee, tip = self._fees()
        tx_hash = b""
        for attempt in (1, 2):
            nonce = self._next_nonce(sender)
            tx: dict[str, Any] = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "value": 0,
                "data": data,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
            if to is not None:
                tx["to"] = to
            signed = account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                self._state.nonces.pop(sender, None)  # re-read from the chain next time
                text = str(exc).lower()
                if "insufficient funds" in text or "insufficient balance" in text:
                    raise InputError(
                        f"{context}: account {sender} of role {role} cannot pay for gas",
                        field="chain.accounts",
                    ) from exc
                if "nonce" in text and attempt == 1:
                    continue  # another process used this account meanwhile: resync, re-sign
                raise VerificationError(f"{context}: node refused the transaction: {exc}") from exc
            self._state.nonces[sender] = nonce + 1
            break
        try:
            receipt = self._wait_receipt(tx_hash)
        except Exception as exc:
            self._state.nonces.pop(sender, None)
            raise VerificationError(
                f"{context}: no receipt for {Web3.to_hex(tx_hash)} after {RECEIPT_TIMEOUT_S:.0f}s "
                f"(is the node mining? {type(exc).__name__})"
            ) from exc
        if int(receipt["status"]) != 1:
            raise self._replay_failure(call_tx, receipt, gas, context)
        created = receipt.get("contractAddress")
        return TxResult(
            tx_hash=Web3.to_hex(tx_hash),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=self.decode_logs(receipt["logs"]),
            contract_address=to_checksum_address(created) if created else None,
        )

    def _wait_receipt(self, tx_hash: bytes) -> Any:
        """Poll with backoff (1 ms doubling to 250 ms): automining nodes answer within a few
        ms, so a fixed poll interval would dominate the latency; real chains take seconds."""
        from web3.exceptions import TransactionNotFound

        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(Hash32(tx_hash))
            except TransactionNotFound:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no receipt after {RECEIPT_TIMEOUT_S:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _replay_failure(
        self, call_tx: TxParams, receipt: Mapping[str, Any], gas: int, context: str
    ) -> ContractRevert:
        """Status 0 carries no reason: replay with eth_call on the parent block to get it."""
        block = max(int(receipt["blockNumber"]) - 1, 0)
        used = int(receipt["gasUsed"])
        where = f"{context} (tx {Web3.to_hex(receipt['transactionHash'])}, replayed)"
        try:
            self.w3.eth.call(call_tx.copy(), block_identifier=block)
        except Exception as exc:
            data = revert_data_from_exception(exc)
            if data is not None:
                return self.revert_decoder.decode(data, context=where)
            if is_out_of_gas(exc) or used >= gas:
                return ContractRevert(
                    "OutOfGas",
                    {"gas_used": used, "gas_limit": gas},
                    f"{where}: ran out of gas ({used} of limit {gas})",
                )
            return ContractRevert("Reverted", {}, f"{where}: reverted without reason ({exc})")
        if used >= gas:
            return ContractRevert(
                "OutOfGas",
                {"gas_used": used, "gas_limit": gas},
                f"{where}: ran out of gas ({used} of limit {gas})",
            )
        return ContractRevert(
            "Reverted", {}, f"{where}: failed on chain but the replay succeeded (state changed)"
        )

    def _dry_run(self, call_tx: TxParams, block: BlockIdentifier, context: str) -> None:
        try:
            self.w3.eth.call(call_tx.copy(), block_identifier=block)
        except Exception as exc:
            data = revert_data_from_exception(exc)
            if data is None and is_out_of_gas(exc):
                raise ContractRevert(
                    "OutOfGas",
                    {"gas_limit": call_tx.get("gas")},
                    f"{context}: would run out of gas (limit {call_tx.get('gas')})",
                ) from None
            if data is None and not _looks_like_revert(exc):
                raise VerificationError(f"{context}: eth_call failed: {exc}") from exc
            raise self.revert_decoder.decode(data, context=context) from None

    def _next_nonce(self, address: str) -> int:
        nonce = self._state.nonces.get(address)
        if nonce is None:
            tag = "pending" if self.kind == "rpc" else "latest"
            nonce = int(self.w3.eth.get_transaction_count(address, tag))  # type: ignore[arg-type]
        return nonce

    def _fees(self) -> tuple[int, int]:
        now = time.monotonic()
        cached = self._state.fee
        if cached is not None and now - cached[0] < 1.0:
            return cached[1], cached[2]
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = DEFAULT_TIP_WEI
        if self.kind == "rpc":
            try:
                tip = int(self.w3.eth.max_priority_fee)
            except Exception:
                tip = DEFAULT_TIP_WEI
        max_fee = 2 * base + tip
        self._state.fee = (now, max_fee, tip)
        return max_fee, tip

    # --------------------------------------------------------------------- events

    def decode_logs(self, logs: Sequence[Mapping[str, Any]]) -> tuple[DecodedEvent, ...]:
        """Decode every log emitted by one of our contracts (others are skipped)."""
        out: list[DecodedEvent] = []
        for log in logs:
            topics = [bytes(t) for t in log["topics"]]
            if not topics or topics[0] not in self._events:
                continue
            spec = self._events[topics[0]]
            indexed = [i for i in spec.inputs if i.get("indexed")]
            plain = [i for i in spec.inputs if not i.get("indexed")]
            values: dict[str, Any] = {}
            for inp, topic in zip(indexed, topics[1:], strict=False):
                t = abi_type(inp)
                dynamic = t in ("string", "bytes") or t.endswith("]") or t.startswith("(")
                values[inp["name"]] = topic if dynamic else abi_decode([t], topic)[0]
                values[inp["name"]] = _normalise_address(t, values[inp["name"]])
            decoded = abi_decode([abi_type(i) for i in plain], bytes(log["data"]))
            for inp, val in zip(plain, decoded, strict=True):
                values[inp["name"]] = _normalise_address(abi_type(inp), val)
            ordered = {i["name"]: _plain(values[i["name"]]) for i in spec.inputs}
            out.append(
                DecodedEvent(
                    contract=spec.contract,
                    address=to_checksum_address(log["address"]),
                    name=spec.name,
                    args=ordered,
                    log_index=int(log["logIndex"]),
                )
            )
        return tuple(out)


def _looks_like_revert(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "revert" in text or "transactionfailed" in text or "contractlogicerror" in text


def _funded_at_genesis(chain: Any, address: bytes) -> bool:
    """Whether `address` held a balance in the genesis state (i.e. the seed matches)."""
    vm = chain.get_vm(at_header=chain.get_canonical_block_header_by_number(0))
    return int(vm.state.get_balance(address)) > 0


@contextmanager
def open_chain(
    chain_dir: str | Path, seed: bytes, rpc_url: str | None = None, *, preflight: bool = True
) -> Iterator[Chain]:
    """`with open_chain(dir, seed) as chain:` — Chain.open that always closes."""
    chain = Chain.open(chain_dir, seed, rpc_url, preflight=preflight)
    try:
        yield chain
    finally:
        chain.close()
