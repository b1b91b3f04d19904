"""Witnesses (C2SP tlog-witness, tlog-cosignature, tlog-policy): independent parties that
cosign a checkpoint only if it extends the last one they cosigned, so that the operator of
a log cannot rewrite it or show different histories to different people unseen.

Both sides live here: the witness (`core.Witness`, served by `server`) and the log's
publisher (`publisher.Publisher`), with the policy a verifier holds (`policy.Policy`).

    policy = load_policy("witness-policy.txt")
    policy.verify(checkpoint_note)              # VerificationError unless the quorum cosigned

See docs/witnesses.md for the trust model.
"""

from ledgerml.witness.cosignature import WitnessKeys
from ledgerml.witness.policy import Policy, Verified, load_policy

__all__ = ["Policy", "Verified", "WitnessKeys", "load_policy"]
