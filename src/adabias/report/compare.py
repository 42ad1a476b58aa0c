"""Compare two ``claims.json`` files: which claims changed verdict or numbers.

Numbers are compared leaf by leaf (nested lists and mappings walked together) with a relative
tolerance: |a − b| ≤ rtol·max(|a|, |b|) (NaN equals NaN); strings and booleans must be equal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Mapping


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _close(a: Any, b: Any, rtol: float) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, numeric) and isinstance(b, numeric)):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def compare_numbers(old: Any, new: Any, rtol: float) -> list[str]:
    """The leaves of two JSON values that differ (structure or value beyond ``rtol``)."""
    old_leaves, new_leaves = dict(_leaves(old)), dict(_leaves(new))
    lines = []
    for path in sorted(set(old_leaves) | set(new_leaves)):
        if path not in old_leaves or path not in new_leaves:
            side = "new" if path not in old_leaves else "old"
            lines.append(f"{path or '(value)'}: only in the {side} file")
        elif not _close(old_leaves[path], new_leaves[path], rtol):
            a, b = old_leaves[path], new_leaves[path]
            relative = ""
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and max(abs(a), abs(b)) > 0:
                relative = f" (relative {abs(a - b) / max(abs(a), abs(b)):.2e})"
            lines.append(f"{path or '(value)'}: {a!r} -> {b!r}{relative}")
    return lines


class ClaimsFileError(ValueError):
    """A file that is not a readable claims.json (the message names the file and why)."""


def load_claims(path: Path) -> dict[str, dict]:
    """Claim id -> claim of a ``claims.json`` file; :class:`ClaimsFileError` if it is not one."""
    try:
        claims = json.loads(Path(path).read_bytes())
    except OSError as error:
        raise ClaimsFileError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ClaimsFileError(f"{path} is not JSON ({error})") from None
    if not isinstance(claims, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and "held" in c and "numbers" in c
            for c in claims):
        raise ClaimsFileError(f"{path} is not a claims.json file (a list of claims, each with "
                              "id, held and numbers)")
    return {c["id"]: c for c in claims}


def compare_claims(old_path: Path, new_path: Path, *, rtol: float = 1e-9,
                   rtol_by_prefix: Mapping[str, float] = {}) -> dict[str, list[str]]:
    """Claim id -> what differs between two claims.json files (empty when none differs).

    ``rtol_by_prefix`` gives a looser tolerance to the claims whose id starts with a prefix
    (float32 experiments, e.g. ``{"cks.fig4": 1e-5}``); the longest matching prefix wins.
    """
    old, new = load_claims(old_path), load_claims(new_path)
    report = {}
    for claim_id in list(old) + [c for c in new if c not in old]:
        if claim_id not in new or claim_id not in old:
            report[claim_id] = [f"only in the {'old' if claim_id not in new else 'new'} file"]
            continue
        prefixes = [p for p in rtol_by_prefix if claim_id.startswith(p)]
        tolerance = rtol_by_prefix[max(prefixes, key=len)] if prefixes else rtol
        lines = []
        if old[claim_id]["held"] != new[claim_id]["held"]:
            lines.append(f"held: {old[claim_id]['held']} -> {new[claim_id]['held']}")
        lines += compare_numbers(old[claim_id]["numbers"], new[claim_id]["numbers"], tolerance)
        if lines:
            report[claim_id] = lines
    return report
