"""The pinned signers file: the operators' signing keys, kept outside the database.

Apart from ``storage.trust`` (which checks rows against these keys) so that reading the
file needs no SQLAlchemy: every command reads it, `intake status` included, and a
command that only reads statuses must start quickly (issue #16). ``storage.trust``
still names everything here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from storage.crypto import CryptoError, VerifyKey

SIGNERS_FILE = "operator_signers"
_FORMAT = "checkin-intake-signers"
_VERSION = 1


class SignersFileError(Exception):
    """The pinned signers file cannot be read; the message is one line."""


# --------------------------------------------------------------------------- the pin file


@dataclass(frozen=True, slots=True)
class PinnedSigner:
    """One operator's signing key: ``operator`` is their encryption key's fingerprint."""

    operator: str
    verify_key: VerifyKey
    removed: bool = False


@dataclass(slots=True)
class Signers:
    """The operators' signing keys, as pinned in a file the database cannot change."""

    pinned: list[PinnedSigner] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Signers | None:
        """The pinned signers, or None when the file does not exist (signing not set up)."""
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SignersFileError(f"{path}: not a signers file ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise SignersFileError(f"{path}: not a signers file")
        try:
            return cls(
                [
                    PinnedSigner(
                        operator=str(item["operator"]),
                        verify_key=VerifyKey.from_text(item["verify_key"]),
                        removed=bool(item.get("removed", False)),
                    )
                    for item in doc["signers"]
                ]
            )
        except (KeyError, TypeError, CryptoError) as exc:
            raise SignersFileError(f"{path}: damaged signers file ({exc})") from None

    def save(self, path: Path) -> None:
        """Write the file at once (a new file renamed over the old), mode 0600."""
        doc = {
            "format": _FORMAT,
            "version": _VERSION,
            "signers": [
                {
                    "operator": p.operator,
                    "verify_key": p.verify_key.to_text(),
                    "removed": p.removed,
                }
                for p in self.pinned
            ],
        }
        temporary = path.with_name(path.name + ".new")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        os.replace(temporary, path)

    def pin(self, operator: str, verify_key: VerifyKey) -> None:
        """Pin ``verify_key`` for the operator; a removed operator stays removed."""
        for p in self.pinned:
            if p.operator == operator:
                if p.removed:
                    raise SignersFileError(f"operator {operator[:19]} was removed")
                if p.verify_key != verify_key:
                    raise SignersFileError(
                        f"operator {operator[:19]} already has another signing key pinned"
                    )
                return
        self.pinned.append(PinnedSigner(operator=operator, verify_key=verify_key))

    def retire(self, operator: str) -> None:
        self.pinned = [
            PinnedSigner(p.operator, p.verify_key, removed=True) if p.operator == operator else p
            for p in self.pinned
        ]

    def active(self) -> dict[str, PinnedSigner]:
        """Pinned, not removed signers, by their signing key's fingerprint."""
        return {p.verify_key.fingerprint(): p for p in self.pinned if not p.removed}


def signers_path(config_dir: Path) -> Path:
    return config_dir / SIGNERS_FILE
