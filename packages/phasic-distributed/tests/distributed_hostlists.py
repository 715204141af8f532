"""Hostlist forms with their expansions, as Slurm 22.05's `scontrol show hostnames` gives them.

The expected lists were written by hand from Slurm's documented rules; the test in
test_hostlist.py re-checks every one against the real scontrol.
"""

from __future__ import annotations

VALID: dict[str, list[str]] = {
    "node1": ["node1"],
    "node[1-3]": ["node1", "node2", "node3"],
    "node[001]": ["node001"],
    "node[01-04]": ["node01", "node02", "node03", "node04"],
    "n[9-11]": ["n9", "n10", "n11"],
    "n[08-10]": ["n08", "n09", "n10"],
    "n[8-010]": ["n8", "n9", "n10"],
    "n[001-3]": ["n001", "n002", "n003"],
    "n[1,3-5]": ["n1", "n3", "n4", "n5"],
    "n[01,2,003]": ["n01", "n2", "n003"],
    "n[1-3,5]": ["n1", "n2", "n3", "n5"],
    "n[1,1,1]": ["n1", "n1", "n1"],
    "n[5-5]": ["n5"],
    "n[0-0]": ["n0"],
    "n[1,3-5],m2,n1": ["n1", "n3", "n4", "n5", "m2", "n1"],
    "b2,a1": ["b2", "a1"],
    "a,b,,c": ["a", "b", "c"],
    "n[1-2],": ["n1", "n2"],
    ",n1": ["n1"],
    "n1 n2": ["n1", "n2"],
    "": [],
    "[1-2]": ["1", "2"],
    "rack[1-2]-node[01-04]": [
        "rack1-node01", "rack1-node02", "rack1-node03", "rack1-node04",
        "rack2-node01", "rack2-node02", "rack2-node03", "rack2-node04",
    ],
    "a[1-2]b[3-4]": ["a1b3", "a1b4", "a2b3", "a2b4"],
    "n[1-2][3-4]": ["n13", "n14", "n23", "n24"],
    "n[1-2]-[3-4]": ["n1-3", "n1-4", "n2-3", "n2-4"],
    "n1[1-2]": ["n11", "n12"],
    "n[1-2]x[3]": ["n1x3", "n2x3"],
    # Three groups: Slurm varies the last fastest, then the first, the middle slowest.
    "a[1-2]b[1-2]c[1-2]": [
        "a1b1c1", "a1b1c2", "a2b1c1", "a2b1c2", "a1b2c1", "a1b2c2", "a2b2c1", "a2b2c2",
    ],
    "a[1-3]b[1-2]c[1]": ["a1b1c1", "a2b1c1", "a3b1c1", "a1b2c1", "a2b2c1", "a3b2c1"],
    "n[1-2],m[3-4]x[5-6]": ["n1", "n2", "m3x5", "m3x6", "m4x5", "m4x6"],
    "n(x)": ["n(x)"],
    "N[1-2]": ["N1", "N2"],
    "n[99999999998-99999999999]": ["n99999999998", "n99999999999"],
}

# (text, fragment of our error message). scontrol rejects every one of these too.
INVALID_BOTH: list[tuple[str, str]] = [
    ("node[3-1]", "runs backwards"),
    ("node[a-b]", "is not a number"),
    ("node[]", "empty brackets"),
    ("n[1,,2]", "empty range element"),
    ("n[-1]", "empty range element"),
    ("n[1-2-3]", "more than one '-'"),
    ("n[1-3]x", "after the last bracket group"),
    ("a.b[1-2].c", "after the last bracket group"),
    ("n[1-2]]", "without a matching '['"),
    ("n[[1-2]]", "nested"),
    ("n[0-65536]", "limit 65536"),
    ("a[2-1],b", "runs backwards"),
]

# Text that scontrol silently misreads but we reject (a misread node list would put
# the coordinator on a wrong host).
INVALID_STRICTER: list[tuple[str, str]] = [
    ("node[1-2", "never closed"),       # scontrol: "node]"
    ("n]1[", "without a matching '['"),  # scontrol: "n]1]"
    ("n[1-]", "empty range element"),    # scontrol: "n1"
    ("n[ 1-2]", "whitespace inside brackets"),  # scontrol: n01 n02
    ("n[+1-2]", "is not a number"),      # scontrol: n01 n02
]
