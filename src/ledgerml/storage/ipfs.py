"""A small client for the kubo HTTP RPC API (`/api/v0/...`), through httpx.

Why not `ipfshttpclient`: it refuses current daemons. Only the calls LedgerML
needs are here: `add` (with the flags that make CIDs identical to ours), `cat`,
`block/get` (per-block fetch, so every byte can be verified against its CID),
`pin/add` and `id`. Every RPC is a POST, as kubo requires.

Usage::

    from ledgerml.storage.ipfs import IpfsClient
    with IpfsClient("http://127.0.0.1:5001") as node:
        cid = node.add_file("model.bin")      # 'bafybei…'
        data = node.block_get(cid)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ledgerml.errors import InputError, LedgerMLError
from ledgerml.storage.cid import parse_cid

#: Query string that makes `add` produce exactly what `ipfs add --cid-version 1` does.
ADD_PARAMS = {
    "cid-version": "1",
    "cid-base": "base32",
    "raw-leaves": "true",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "pin": "true",
    "progress": "false",
}


class IpfsError(LedgerMLError):
    """The IPFS node could not be reached or refused a request (CLI exit 1: fail closed)."""


class IpfsClient:
    """Kubo RPC client bound to one API base URL such as `http://127.0.0.1:5001`."""

    def __init__(self, api: str, *, timeout: float = 120.0) -> None:
        url = httpx.URL(api)
        if url.scheme not in ("http", "https") or not url.host:
            raise InputError(f"not an http(s) URL: {api!r}", field="storage.ipfs_api")
        self.api = str(api).rstrip("/")
        self._http = httpx.Client(base_url=self.api + "/api/v0", timeout=timeout)

    # -- plumbing -----------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IpfsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise IpfsError(f"IPFS node {self.api} unreachable ({path}): {exc}") from exc
        if resp.status_code != 200:
            raise IpfsError(
                f"IPFS node {self.api} {path} -> HTTP {resp.status_code}: {resp.text[:300]}"
            )
        return resp

    # -- calls ----------------------------------------------------------------------
    def id(self) -> dict[str, Any]:
        """The node's identity document; doubles as a liveness check."""
        result: dict[str, Any] = self._post("/id").json()
        return result

    def _add(self, name: str, content: Any) -> str:
        resp = self._post(
            "/add",
            params=ADD_PARAMS,
            files={"file": (name, content, "application/octet-stream")},
        )
        last: dict[str, Any] | None = None
        for line in resp.text.splitlines():
            if line.strip():
                last = json.loads(line)
        if not last or "Hash" not in last:
            raise IpfsError(f"IPFS node {self.api} add returned no CID: {resp.text[:300]}")
        # Normalise (js-ipfs may answer in base58btc): same CID, canonical spelling.
        return parse_cid(str(last["Hash"])).cid

    def add_file(self, path: str | os.PathLike[str]) -> str:
        """Upload a file (streamed from disk); return the node's CID as CIDv1 base32."""
        p = Path(path)
        with p.open("rb") as fh:
            return self._add(p.name, fh)

    def add_bytes(self, data: bytes) -> str:
        """Upload bytes and return the CID the node computed."""
        return self._add("data", data)

    def cat(self, cid: str) -> Iterator[bytes]:
        """Stream a file's bytes as the node reassembles them (unverified: callers check)."""
        try:
            with self._http.stream("POST", "/cat", params={"arg": cid}) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise IpfsError(
                        f"IPFS node {self.api} /cat {cid} -> HTTP {resp.status_code}: "
                        f"{resp.text[:300]}"
                    )
                yield from resp.iter_bytes(1 << 20)
        except httpx.HTTPError as exc:
            raise IpfsError(f"IPFS node {self.api} unreachable (/cat): {exc}") from exc

    def block_get(self, cid: str, *, timeout: str = "30s") -> bytes:
        """One raw block by CID; the caller re-hashes it before trusting it.

        `timeout` is the node-side limit, so a block nobody has fails instead of
        waiting on the network forever.
        """
        return self._post("/block/get", params={"arg": cid, "timeout": timeout}).content

    def pin_add(self, cid: str) -> None:
        """Pin a CID on the node so its garbage collector keeps it."""
        self._post("/pin/add", params={"arg": cid})
