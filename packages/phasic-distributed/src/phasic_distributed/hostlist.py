"""SLURM hostlist expressions: expand (``node[01-03]`` -> names) and compress.

Our own implementation of the syntax as Slurm 22.05's ``scontrol show hostnames``
expands it (checked against it in the tests):

* entries are separated by commas or whitespace outside brackets; empty entries
  are skipped; order and duplicates are kept;
* a bracket holds a comma list of numbers or ``lo-hi`` ranges; every number of a
  range is zero padded to the width of ``lo`` as written (``[08-10]`` -> 08 09 10,
  ``[8-010]`` -> 8 9 10);
* several bracket groups in one entry form a product (``rack[1-2]-node[01-02]``).
  Slurm's order for that product: the last group varies fastest, then the first,
  the second, ... and the second-to-last slowest (for two groups this is the
  usual row-major order);
* text after the last bracket group is rejected (``n[1-2]x`` is invalid in Slurm).

Sizes are checked before anything is allocated: a list may name at most
`MAX_HOSTS` hosts and a host name may be at most `MAX_NAME` characters long, so a
short malformed text (``n[0-65535,0-65535,...]``, ``n[000...0-65535]``) is
refused with a `ValueError` instead of using gigabytes of memory.

Where Slurm silently accepts malformed text (``node[1-2`` -> ``node]``,
``n[1-]`` -> ``n1``, blanks inside brackets) we raise ``ValueError`` instead: a
misread node list would put the coordinator on the wrong host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Slurm refuses a single range with more hosts than this.
MAX_RANGE = 65536
#: Our cap on the hosts of one list: more nodes than any Slurm cluster has.
MAX_HOSTS = 65536
#: Longest host name an expansion may produce (a DNS name has at most 253 characters).
MAX_NAME = 255

_SEPARATORS = ", \t\n\r"
_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$", re.S)


def _error(text: str, pos: int, why: str) -> ValueError:
    marker = " " * pos + "^"
    return ValueError(f"invalid hostlist at position {pos}: {why}\n  {text}\n  {marker}")


def _too_many(text: str, pos: int) -> ValueError:
    return _error(text, pos, f"the list expands to more than the limit of {MAX_HOSTS} hosts")


def _split_entries(text: str) -> list[tuple[int, str]]:
    """Split at top-level separators; return (start position, entry) pairs."""
    entries: list[tuple[int, str]] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth:
                raise _error(text, i, "nested '[' (brackets cannot be nested)")
            depth = 1
        elif ch == "]":
            if not depth:
                raise _error(text, i, "']' without a matching '['")
            depth = 0
        elif ch in _SEPARATORS and not depth:
            if i > start:
                entries.append((start, text[start:i]))
            start = i + 1
        elif ch in _SEPARATORS and depth and ch != ",":
            raise _error(text, i, "whitespace inside brackets")
    if depth:
        raise _error(text, text.rfind("["), "'[' is never closed")
    if len(text) > start:
        entries.append((start, text[start:]))
    return entries


def _parse_number(text: str, token: str, pos: int) -> int:
    if not token:
        raise _error(text, pos, "empty range element")
    if not token.isascii() or not token.isdigit():
        raise _error(text, pos, f"{token!r} is not a number")
    return int(token)


def _parse_bracket(text: str, body: str, pos: int) -> list[tuple[str, int, int]]:
    """Parse one bracket group (``01-03,7``) into (lo as written, lo, hi) spans.

    Nothing is expanded here: the caller checks the sizes first. `pos` is where
    `body` starts in `text`.
    """
    if not body:
        raise _error(text, pos, "empty brackets '[]'")
    spans: list[tuple[str, int, int]] = []
    offset = pos
    for element in body.split(","):
        parts = element.split("-")
        if len(parts) > 2:
            raise _error(text, offset, f"range {element!r} has more than one '-'")
        lo_text = parts[0]
        lo = _parse_number(text, lo_text, offset)
        hi = lo if len(parts) == 1 else _parse_number(text, parts[1], offset + len(lo_text) + 1)
        if hi < lo:
            raise _error(text, offset, f"range {element!r} runs backwards ({lo} > {hi})")
        if hi - lo + 1 > MAX_RANGE:
            raise _error(
                text, offset, f"range {element!r} has {hi - lo + 1} hosts (limit {MAX_RANGE})"
            )
        spans.append((lo_text, lo, hi))
        offset += len(element) + 1
    return spans


def _group_size(spans: list[tuple[str, int, int]]) -> int:
    return sum(hi - lo + 1 for _, lo, hi in spans)


def _group_width(spans: list[tuple[str, int, int]]) -> int:
    """The longest number a group writes (padded to lo's width, or hi's digits)."""
    return max(max(len(lo_text), len(str(hi))) for lo_text, _, hi in spans)


def _expand_group(spans: list[tuple[str, int, int]]) -> list[str]:
    out: list[str] = []
    for lo_text, lo, hi in spans:
        if lo == hi:
            out.append(lo_text)
        else:
            out.extend(str(n).zfill(len(lo_text)) for n in range(lo, hi + 1))
    return out


def _expand_entry(text: str, start: int, entry: str, budget: int) -> list[str]:
    """The hosts of one entry; `budget` is how many hosts the list may still add."""
    if "[" not in entry:
        return [entry]
    # Split into literal pieces and bracket groups: lit0 [g1] lit1 [g2] ... litk.
    literals: list[str] = []
    parsed: list[list[tuple[str, int, int]]] = []
    pos = 0
    while True:
        open_at = entry.find("[", pos)
        if open_at < 0:
            tail = entry[pos:]
            if tail:
                raise _error(
                    text,
                    start + pos,
                    f"text {tail!r} after the last bracket group (Slurm rejects it too)",
                )
            break
        close_at = entry.index("]", open_at)  # balanced: checked by _split_entries
        literals.append(entry[pos:open_at])
        parsed.append(_parse_bracket(text, entry[open_at + 1 : close_at], start + open_at + 1))
        pos = close_at + 1
    # Sizes first, from the parsed numbers alone: nothing big is allocated for a
    # list that is refused.
    total = 1
    for spans in parsed:
        total *= _group_size(spans)
        if total > budget:
            raise _too_many(text, start)
    longest = sum(map(len, literals)) + sum(map(_group_width, parsed))
    if longest > MAX_NAME:
        raise _error(text, start, f"host names would be up to {longest} characters long "
                                  f"(limit {MAX_NAME})")
    groups = [_expand_group(spans) for spans in parsed]
    # Slurm's order: last group fastest, then the first, second, ..., second-to-last.
    order = list(range(len(groups) - 1)) + [len(groups) - 1]
    names: list[str] = []
    indices = [0] * len(groups)
    for _ in range(total):
        names.append("".join(lit + groups[g][indices[g]] for g, lit in enumerate(literals)))
        # Odometer step: the last entry of `order` is the fastest digit.
        for g in (order[-1], *order[:-1]):
            indices[g] += 1
            if indices[g] < len(groups[g]):
                break
            indices[g] = 0
    return names


def expand_hostlist(text: str) -> list[str]:
    """Expand a SLURM hostlist expression into host names, in Slurm's order.

    >>> expand_hostlist("rack[1-2]-node[01-02],login")
    ['rack1-node01', 'rack1-node02', 'rack2-node01', 'rack2-node02', 'login']

    Raises ``ValueError`` naming the position for malformed lists (``node[3-1]``,
    ``node[a-b]``, unbalanced or empty brackets, text after the last bracket).
    """
    if not isinstance(text, str):
        raise TypeError(f"hostlist must be a str, got {type(text).__name__}")
    hosts: list[str] = []
    for start, entry in _split_entries(text):
        hosts.extend(_expand_entry(text, start, entry, MAX_HOSTS - len(hosts)))
        if len(hosts) > MAX_HOSTS:  # plain names count too
            raise _too_many(text, start)
    return hosts


def compress_hostlist(hosts: Iterable[str]) -> str:
    """Write host names as a compact hostlist that `expand_hostlist` turns back into them.

    Order and duplicates are kept: only runs of consecutive names that share a
    prefix and count upwards by one are merged into ranges.
    """
    names: Sequence[str] = list(hosts)
    for name in names:
        if not name or any(c in name for c in "[]" + _SEPARATORS):
            raise ValueError(f"host name {name!r} cannot appear in a hostlist")
    entries: list[str] = []
    i = 0
    while i < len(names):
        m = _TRAILING_DIGITS.match(names[i])
        if not m:
            entries.append(names[i])
            i += 1
            continue
        prefix = m.group(1)
        elements: list[str] = []
        while i < len(names):
            m = _TRAILING_DIGITS.match(names[i])
            if not m or m.group(1) != prefix:
                break
            lo_text = m.group(2)
            width = len(lo_text)
            n = int(lo_text)
            j = i + 1
            while j < len(names) and names[j] == prefix + str(n + 1).zfill(width):
                n += 1
                j += 1
            elements.append(lo_text if j == i + 1 else f"{lo_text}-{str(n).zfill(width)}")
            i = j
        if len(elements) == 1 and "-" not in elements[0]:
            entries.append(prefix + elements[0])
        else:
            entries.append(f"{prefix}[{','.join(elements)}]")
    return ",".join(entries)
