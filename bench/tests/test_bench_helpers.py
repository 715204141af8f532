"""The references and plumbing the benchmarks rely on, checked independently."""

from __future__ import annotations

import json
import math
import sys

import common
import numpy as np
import pytest
from common import (
    Flag,
    cli,
    finish,
    kingman_mean_var,
    run_json,
    sub_intensity,
)
from scaling import parse_ranks

from phasic.reference import kingman_tmrca

TIMES = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0])


def test_exact_pdf_integrates_to_one_with_the_right_mean() -> None:
    from scipy.integrate import quad

    def f(t: float) -> float:
        return float(kingman_tmrca(6, [t], digits=60).pdf[0])

    mass = quad(f, 0.0, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    mean = quad(lambda t: t * f(t), 0.0, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    assert abs(mass - 1.0) < 1e-9
    assert abs(mean - kingman_mean_var(6)[0]) < 1e-9


def test_closed_form_moments_against_the_chain() -> None:
    for n in (2, 3, 7):
        rates = [k * (k - 1) / 2 for k in range(2, n + 1)]
        mean, var = kingman_mean_var(n)
        assert math.isclose(mean, sum(1 / r for r in rates), rel_tol=1e-14)
        assert math.isclose(var, sum(1 / r**2 for r in rates), rel_tol=1e-14)


def test_sub_intensity_of_kingman_gives_its_moments() -> None:
    from phasic import models

    for n in (4, 9):
        alpha, sub = sub_intensity(models.kingman(n).to_json(), [1.0])
        assert math.isclose(alpha.sum(), 1.0)
        u1 = np.linalg.solve(-sub.toarray(), np.ones(len(alpha)))
        u2 = np.linalg.solve(-sub.toarray(), u1)
        mean, var = kingman_mean_var(n)
        assert math.isclose(alpha @ u1, mean, rel_tol=1e-12)
        assert math.isclose(2 * alpha @ u2 - (alpha @ u1) ** 2, var, rel_tol=1e-12)


def test_sub_intensity_scales_with_theta() -> None:
    from phasic import models

    structure = models.kingman(5).to_json()
    _, s1 = sub_intensity(structure, [1.0])
    _, s3 = sub_intensity(structure, [3.0])
    np.testing.assert_allclose(s3.toarray(), 3 * s1.toarray(), rtol=1e-15)


def test_run_json_reads_the_result_line() -> None:
    code = "import json; print('noise'); print('RESULT ' + json.dumps({'x': 1}))"
    assert run_json([sys.executable, "-c", code]) == ({"x": 1}, "")


def test_run_json_names_why_a_worker_gave_nothing() -> None:
    res, why = run_json([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert res is None and "exit code 1" in why and "boom" in why
    res, why = run_json([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert res is None and "timed out after 1 s" in why
    res, why = run_json(["/nonexistent/python"])
    assert res is None and "could not start" in why


def test_parse_ranks_reads_launcher_and_srun_prefixes() -> None:
    out = "\n".join([
        "[rank 1] RESULT " + json.dumps({"rank": 1}),
        "[rank 0] something else",
        "0: RESULT " + json.dumps({"rank": 0}),
        "RESULT " + json.dumps({"rank": 2}),
    ])
    assert [r["rank"] for r in parse_ranks(out)] == [0, 1, 2]


def test_finish_writes_the_json_draws_the_figure_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    drawn = []
    path = finish("demo", True, {"rows": [1, 2]}, [0.5, 0.5, 0.5], plot=lambda: drawn.append(1))
    data = json.loads(path.read_text())
    assert path == tmp_path / "demo-quick.json" and drawn == [1]
    assert data["benchmark"] == "demo" and data["quick"] is True and data["rows"] == [1, 2]
    assert data["load_average"]["start"] == [0.5, 0.5, 0.5]
    assert capsys.readouterr().out == f"  wrote {path} and {tmp_path / 'demo-quick.png'}\n"
    path = finish("demo", False, {}, [0.0, 0.0, 0.0])
    assert capsys.readouterr().out == f"  wrote {tmp_path / 'demo.json'}\n"


def _run(quick: bool, **kwargs: object) -> dict:
    """Stands in for a module's run(): records what the command line gave it."""
    _run.calls.append((quick, kwargs))
    return {"ok": quick}


def test_cli_passes_quick_and_flags_to_run(monkeypatch) -> None:
    _run.calls = []
    flags = [Flag("--no-slurm", "slurm", "skip", lambda on: not on)]
    monkeypatch.setattr(sys, "argv", ["x.py", "--quick", "--no-slurm"])
    cli(_run, "small", flags=flags)
    monkeypatch.setattr(sys, "argv", ["x.py"])
    cli(_run, "small", flags=flags)
    assert _run.calls == [(True, {"slurm": False}), (False, {"slurm": True})]


def test_cli_runs_the_hidden_worker_instead_of_run(monkeypatch) -> None:
    _run.calls, got = [], []
    monkeypatch.setattr(sys, "argv", ["x.py", "--worker", "splu", "500"])
    cli(_run, "small", worker=got.append)
    assert got == [["splu", "500"]] and _run.calls == []


def test_cli_exit_status_follows_failed(monkeypatch) -> None:
    _run.calls = []
    for argv, code in ((["x.py", "--quick"], 0), (["x.py"], 1)):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            cli(_run, "small", failed=lambda result: not result["ok"])
        assert exit_info.value.code == code


def test_cli_rejects_an_unknown_flag_with_a_usage_message(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["x.py", "--quik"])
    with pytest.raises(SystemExit) as exit_info:
        cli(_run, "small")
    assert exit_info.value.code == 2 and "unrecognized arguments: --quik" in capsys.readouterr().err
