"""The named checks are declared once (`@check`), and the packs validate against that one
registry: every check a shipped pack names exists, a second declaration of a name is
refused, and an unknown name in a pack is refused naming the field."""

from __future__ import annotations

import pytest

from ledgerml.compliance import available_packs, load_pack
from ledgerml.compliance.checks import CHECKS, check
from ledgerml.compliance.packs import parse_pack
from ledgerml.errors import InputError


def test_every_check_a_pack_names_is_registered_once() -> None:
    named = {r.check for n in available_packs() for r in load_pack(n).rules if r.check}
    assert named and named <= set(CHECKS)
    assert all(CHECKS[n] for n in CHECKS)  # each carries its description


def test_a_second_declaration_of_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):

        @check("no_pii_features", "again")
        def _again(ev, rule):  # type: ignore[no-untyped-def]  # pragma: no cover
            raise AssertionError


def test_an_unknown_check_in_a_pack_names_the_field() -> None:
    text = (
        b'[pack]\nid="x"\nversion=1\napprover_roles=["risk_approver"]\n'
        b'[[rule]]\nid="R"\nregulation="r"\ndescription="d"\nkind="check"\ncheck="astrology"\n'
    )
    with pytest.raises(InputError, match=r"rule\[0\]\.check"):
        parse_pack(text)
