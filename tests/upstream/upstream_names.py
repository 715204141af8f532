"""pytest plugin for upstream phasic's test files: names they use but never import.

Upstream's `test_slurm_multinode_ffi.py` decorates a model with `@callback([2, 0])`
but imports only `Graph` and `phasic`, so under upstream itself its two SVGD tests
stop with a NameError. To run that file unchanged, this plugin puts
`phasic.callback` into a collected test module's namespace when the module uses
the name and does not define it, and says so in pytest's header. It adds nothing
else.
"""

from __future__ import annotations

from typing import Any

# names upstream's test files use without importing them -> attribute of phasic
SUPPLIED = {"callback": "callback"}
_supplied: list[str] = []


def pytest_report_header(config: Any) -> list[str]:
    return ["upstream_names: supplies " + ", ".join(f"phasic.{a} as `{n}`"
                                                    for n, a in SUPPLIED.items())
            + " to upstream test modules that use the name without importing it"]


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    import phasic

    modules = {id(m): m for m in (getattr(i, "module", None) for i in items) if m}
    for module in modules.values():
        source = getattr(module, "__file__", "") or ""
        try:
            text = open(source, encoding="utf-8").read()
        except OSError:
            continue
        for name, attribute in SUPPLIED.items():
            if f"@{name}(" in text and not hasattr(module, name) and hasattr(phasic, attribute):
                setattr(module, name, getattr(phasic, attribute))
                _supplied.append(f"{module.__name__}.{name}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _supplied:
        terminalreporter.write_line("upstream_names supplied: " + ", ".join(_supplied))
