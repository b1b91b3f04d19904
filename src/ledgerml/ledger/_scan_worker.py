"""Worker process of a parallel `verify`: hashes and parses one range of entries.

Run as `python -m ledgerml.ledger._scan_worker DB LO HI|- OUT`; writes the leaf
hashes to OUT and the problems (JSON) to OUT.json. Nothing imports this module,
so running it with `-m` is clean.
"""

from __future__ import annotations

import sys

import orjson

from ledgerml.ledger._scan import scan_range


def main(argv: list[str]) -> int:
    db_path, lo, hi, out = argv
    leaves, problems, expected = scan_range(db_path, int(lo), None if hi == "-" else int(hi))
    with open(out, "wb") as fh:
        fh.write(leaves)
    with open(out + ".json", "wb") as fh:
        fh.write(orjson.dumps({"problems": problems, "expected": expected}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
