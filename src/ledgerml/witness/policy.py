"""C2SP tlog-policy: which logs and witnesses a verifier trusts, and the quorum it demands.

Why: a checkpoint signed by the log alone proves nothing against the log's operator, who
holds the key. A policy names independent witnesses and how many of them must have
cosigned; a checkpoint that lacks that quorum is rejected (fail closed).

    policy = Policy.parse(Path("witness-policy.txt").read_text())
    ok = policy.verify(note)          # VerificationError unless log-signed and quorum met
    ok.cosigners                      # ("bank-b", "bank-c", "auditor")

Syntax (c2sp.org/tlog-policy): `log <vkey> [url]`, `witness <name> <vkey> [url]`,
`group <name> all|any|<k> <member>…`, `quorum <name>|none`; `#` comments, blank lines,
space/tab separators. Groups may only name what earlier lines defined.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ledgerml.crypto.note import (
    SIG_COSIG_ED25519,
    SIG_COSIG_MLDSA44,
    SIG_ED25519,
    NoteVerifier,
    SignatureLine,
    SignedNote,
    parse_checkpoint_head,
    parse_note,
)
from ledgerml.errors import InputError, VerificationError

#: Limits (the spec recommends supporting at least 32 of each).
MAX_ENTRIES = 256
#: Cosignatures dated further than this into the future are ignored (clock skew allowance).
FUTURE_SKEW_S = 600
#: Key types a log may sign its checkpoints with (policy `log` lines, a witness's logs).
LOG_TYPES = frozenset({SIG_ED25519, SIG_COSIG_ED25519, SIG_COSIG_MLDSA44})
_WITNESS_TYPES = frozenset({SIG_COSIG_ED25519, SIG_COSIG_MLDSA44})


@dataclass(frozen=True)
class PolicyLog:
    verifier: NoteVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    verifier: NoteVerifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Verified:
    """A checkpoint that passed a policy: what it says and who vouched for it."""

    origin: str
    size: int
    root: bytes
    cosigners: tuple[str, ...]
    note: SignedNote = field(repr=False)


class BadLogSignature(VerificationError):
    """A trusted log key signed the checkpoint, but its signature does not verify."""

    def __init__(self, key_name: str) -> None:
        super().__init__(f"bad log signature from {key_name}")
        self.key_name = key_name


def log_signature_lines(note: SignedNote, logs: Sequence[NoteVerifier]) -> list[SignatureLine]:
    """The note's signature lines made by one of `logs` (lines of other keys are ignored, as
    signed-note says); a listed key whose signature fails raises BadLogSignature."""
    raw = note.text.encode()
    lines: list[SignatureLine] = []
    for sig in note.signatures:
        for v in logs:
            if sig.name == v.name and sig.key_id == v.key_id:
                if not v.verify(raw, sig.signature):
                    raise BadLogSignature(v.name)
                lines.append(sig)
    return lines


def _vkey(text: str, lineno: int, allowed: frozenset[int], what: str) -> NoteVerifier:
    try:
        verifier = NoteVerifier.from_vkey(text)
    except InputError as exc:
        raise InputError(f"line {lineno}: {exc}", field="policy") from None
    if verifier.sig_type not in allowed:
        raise InputError(
            f"line {lineno}: unknown or unsuitable key type {verifier.sig_type:#04x} for a "
            f"{what} (allowed: {', '.join(f'{t:#04x}' for t in sorted(allowed))})",
            field="policy",
        )
    return verifier


@dataclass(frozen=True)
class Policy:
    """A parsed policy. `quorum` is a witness or group name, or "none"."""

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[Group, ...]
    quorum: str

    @classmethod
    def parse(cls, text: str | bytes) -> Policy:
        """Parse a policy file; InputError names the line and what is wrong with it."""
        raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        for i, byte in enumerate(raw):
            if (byte < 0x20 and byte not in (0x09, 0x0A)) or byte == 0x7F:
                at = raw.count(b"\n", 0, i) + 1
                raise InputError(f"line {at}: control character {byte:#04x}", field="policy")
        logs: list[PolicyLog] = []
        witnesses: dict[str, PolicyWitness] = {}
        groups: dict[str, Group] = {}
        quorum: str | None = None
        seen_keys: set[bytes] = set()
        for lineno, line in enumerate(raw.decode("utf-8", "surrogateescape").split("\n"), 1):
            words = line.replace("\t", " ").split()
            if not words or words[0].startswith("#"):
                continue
            keyword, args = words[0], words[1:]

            def fail(message: str, n: int = lineno) -> InputError:
                return InputError(f"line {n}: {message}", field="policy")

            if keyword == "log":
                if len(args) not in (1, 2):
                    raise fail("expected `log <vkey> [<url>]`")
                v = _vkey(args[0], lineno, LOG_TYPES, "log")
                if v.public_key in seen_keys:
                    raise fail("duplicate key (a log or witness already uses it)")
                seen_keys.add(v.public_key)
                logs.append(PolicyLog(v, args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise fail("expected `witness <name> <vkey> [<url>]`")
                name = args[0]
                if name == "none" or name in witnesses or name in groups:
                    raise fail(f"name {name!r} is reserved or already defined")
                v = _vkey(args[1], lineno, _WITNESS_TYPES, "witness")
                if v.public_key in seen_keys:
                    raise fail("duplicate key (a log or witness already uses it)")
                seen_keys.add(v.public_key)
                witnesses[name] = PolicyWitness(name, v, args[2] if len(args) == 3 else None)
            elif keyword == "group":
                if len(args) < 3:
                    raise fail("expected `group <name> all|any|<k> <member>…`")
                name, k_text, members = args[0], args[1], tuple(args[2:])
                if name == "none" or name in witnesses or name in groups:
                    raise fail(f"name {name!r} is reserved or already defined")
                for m in members:
                    if m not in witnesses and m not in groups:
                        raise fail(f"member {m!r} is not defined on an earlier line")
                if len(set(members)) != len(members):
                    raise fail("a member is listed twice")
                if k_text == "all":
                    k = len(members)
                elif k_text == "any":
                    k = 1
                elif k_text.isascii() and k_text.isdigit() and not k_text.startswith("0"):
                    k = int(k_text)
                    if not 1 <= k <= len(members):
                        raise fail(f"threshold {k} is not between 1 and {len(members)}")
                else:
                    raise fail(f"threshold {k_text!r} is not all, any or a decimal number")
                groups[name] = Group(name, k, members)
            elif keyword == "quorum":
                if len(args) != 1:
                    raise fail("expected `quorum <name>`")
                if quorum is not None:
                    raise fail("a second quorum line (exactly one is allowed)")
                if args[0] != "none" and args[0] not in witnesses and args[0] not in groups:
                    raise fail(f"quorum {args[0]!r} is not defined on an earlier line")
                quorum = args[0]
            else:
                raise fail(f"unknown keyword {keyword!r} (log, witness, group, quorum)")
            if max(len(logs), len(witnesses), len(groups)) > MAX_ENTRIES:
                raise fail(f"more than {MAX_ENTRIES} logs, witnesses or groups")
        if quorum is None:
            raise InputError("no quorum line (exactly one is required)", field="policy")
        return cls(tuple(logs), tuple(witnesses.values()), tuple(groups.values()), quorum)

    # -- the quorum rule ---------------------------------------------------------------

    def satisfied(self, cosigners: Sequence[str] | set[str]) -> bool:
        """Does this set of witness names meet the quorum?"""
        have = set(cosigners)
        groups: Mapping[str, Group] = {g.name: g for g in self.groups}

        def met(name: str) -> bool:
            group = groups.get(name)
            if group is None:
                return name in have
            return sum(met(m) for m in group.members) >= group.threshold

        return self.quorum == "none" or met(self.quorum)

    def witness(self, name: str) -> PolicyWitness:
        for w in self.witnesses:
            if w.name == name:
                return w
        raise InputError(f"no witness {name!r} in the policy", field="witness")

    # -- verification ------------------------------------------------------------------

    def cosigners_of(
        self,
        note: str | SignedNote,
        *,
        now: float | None = None,
        max_age_s: float | None = None,
    ) -> tuple[str, ...]:
        """Witness names whose cosignature on `note` verifies (a bad one rejects the note);
        with `max_age_s`, only cosignatures made within that many seconds count."""
        parsed = parse_note(note) if isinstance(note, str) else note
        raw = parsed.text.encode()
        clock = time.time() if now is None else now
        limit = clock + FUTURE_SKEW_S
        oldest = -1.0 if max_age_s is None else clock - max_age_s
        good: list[str] = []
        for w in self.witnesses:
            v = w.verifier
            for sig in parsed.signatures:
                if sig.name != v.name or sig.key_id != v.key_id:
                    continue  # unknown keys are ignored (signed-note)
                if not v.verify(raw, sig.signature):
                    raise VerificationError(f"bad cosignature from witness {w.name} ({v.name})")
                (ts,) = struct.unpack(">Q", sig.signature[:8])
                if ts > limit or ts < oldest:
                    continue  # in the future (tlog-cosignature MAY reject) or too old
                if w.name not in good:
                    good.append(w.name)
        return tuple(good)

    def verify(
        self,
        note: str,
        *,
        log_verifiers: Sequence[NoteVerifier] = (),
        now: float | None = None,
        max_age_s: float | None = None,
    ) -> Verified:
        """Accept `note` only if a listed log signed it and the quorum cosigned it.

        `log_verifiers` add logs known from context (a policy may list none); `max_age_s`
        counts only recent cosignatures (a log that froze a stale view for its verifiers
        then fails). Fails closed: VerificationError naming what is missing.
        """
        parsed = parse_note(note)
        origin, size, root = parse_checkpoint_head(parsed.text)
        if len(root) != 32:
            raise VerificationError("checkpoint root is not 32 bytes")
        logs = [p.verifier for p in self.logs if p.verifier.name == origin]
        logs += [v for v in log_verifiers if v.name == origin]
        if not logs:
            raise VerificationError(f"the policy lists no log with origin {origin!r}")
        if not log_signature_lines(parsed, logs):
            raise VerificationError(f"checkpoint {origin}@{size} has no valid log signature")
        cosigners = self.cosigners_of(parsed, now=now, max_age_s=max_age_s)
        if not self.satisfied(cosigners):
            got = ", ".join(cosigners) or "none"
            recent = "" if max_age_s is None else f" made in the last {max_age_s:g} s"
            raise VerificationError(
                f"checkpoint {origin}@{size} root {base64.b64encode(root).decode()} lacks the "
                f"witness quorum {self.quorum!r} (valid cosignatures{recent} from: {got})"
            )
        return Verified(origin, size, root, cosigners, parsed)


def load_policy(path: str) -> Policy:
    """Read and parse a policy file; a missing or unreadable file is an InputError."""
    try:
        with open(path, "rb") as fh:
            data = fh.read((1 << 20) + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field="policy") from None
    if len(data) > 1 << 20:
        raise InputError(f"{path} is over 1 MiB", field="policy")
    return Policy.parse(data)
