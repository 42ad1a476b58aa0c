"""The reproduce pipeline: registry, claims, cache/resume, report files, CLI; and cks.fig1."""

import json

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from adabias import cli  # noqa: E402
from adabias.experiments import REGISTRY, Result, base, cks_fig1  # noqa: E402
from adabias.report import run_experiments  # noqa: E402


@pytest.mark.parametrize("beta,rho,eps", [(0.95, 0.9, 1e-4), (0.95, 0.999, 1e-1), (0.0, 0.5, 10.0)])
def test_fig1_quadrature_matches_closed_form(beta, rho, eps):
    xs = np.linspace(-2, 2, 401)
    xs[200] = 0.0
    numeric = cks_fig1.quadrature(xs, beta, rho, eps, nodes=8)
    exact = cks_fig1.closed_form(xs, beta, rho, eps)
    np.testing.assert_allclose(numeric, exact, rtol=1e-10, atol=1e-12 * np.max(np.abs(exact)))


def test_fig1_closed_form_against_a_plain_riemann_sum():
    # independent of both: midpoint rule on a very fine grid of d√(ε+y²)
    beta, rho, eps, x = 0.95, 0.99, 1e-2, 0.7
    y = np.linspace(0, x, 2_000_001)
    mid = (y[1:] + y[:-1]) / 2
    riemann = np.sum(cks_fig1.coefficient(mid, beta, rho, eps) * np.diff(np.sqrt(eps + y * y)))
    assert cks_fig1.closed_form(np.array(x), beta, rho, eps) == pytest.approx(riemann, rel=1e-9)


def _toy_experiment(verdicts):
    """An experiment whose decide returns ``verdicts`` (measure/plot/tables trivial)."""
    return base.Experiment(
        id="test.toy", paper="CKS", title="toy", tiers=base.Tiers(quick=(), medium=(), full=()),
        claims={"test.toy.a": base.ClaimSpec("a statement", "paper", "a test"),
                "test.toy.b": base.ClaimSpec("b statement", "theory", "b test")},
        measure=lambda settings, context: None,
        decide=lambda settings, record: base.Decision(verdicts=verdicts, notes=["a note"]),
        plot=lambda settings, record: {}, tables=lambda settings, record: {})


def test_claim_normalizes_numbers_and_rejects_undeclared():
    exp = _toy_experiment([base.Verdict("test.toy.a", np.bool_(True),
                                        {"a": np.float64(0.5), "b": np.arange(3), "c": float("nan")})])
    result = exp.run((), base.Context(progress=False))
    claim = result.claims[0]
    assert claim.to_json()["numbers"] == {"a": 0.5, "b": [0, 1, 2], "c": None}
    assert claim.held is True and claim.statement == "a statement" and result.notes == ["a note"]
    with pytest.raises(KeyError, match="does not declare"):
        _toy_experiment([base.Verdict("test.toy.nonexistent", True, {})]).run((), base.Context())
    with pytest.raises(RuntimeError, match="not decided"):
        base.check_result(exp, Result(claims=[claim]))
    with pytest.raises(ValueError, match="must be 'test.toy' or start with"):
        base.Experiment(id="test.toy", paper="CKS", title="toy", tiers=exp.tiers,
                        claims={"other.a": base.ClaimSpec("x", "paper", "x test")},
                        measure=exp.measure, decide=exp.decide, plot=exp.plot, tables=exp.tables)
    with pytest.raises(ValueError, match="scale must be one of"):
        base.Context(scale="huge")


def test_claims_carry_kind_and_test_and_a_reason_when_not_held():
    exp = _toy_experiment([base.Verdict("test.toy.a", True, {"x": 1.0}),
                           base.Verdict("test.toy.b", False, {"x": 2.0}, "undecided: spread")])
    a, b = exp.run((), base.Context(progress=False)).claims
    assert (a.kind, a.test, b.kind, b.test) == ("paper", "a test", "theory", "b test")
    assert b.to_json()["note"] == "undecided: spread" and b.to_json()["kind"] == "theory"
    silent = _toy_experiment([base.Verdict("test.toy.a", False, {"x": 1.0})])
    with pytest.raises(ValueError, match="gives no reason"):
        silent.run((), base.Context(progress=False))


@pytest.mark.parametrize("spec,error,match", [
    ("a statement", TypeError, "ClaimSpec"),
    (base.ClaimSpec("s", "guess", "t"), ValueError, "kind must be one of"),
    (base.ClaimSpec("s", "paper", " "), ValueError, "test must be a non-empty"),
    (base.ClaimSpec("", "theory", "t"), ValueError, "statement must be a non-empty"),
])
def test_claim_specs_are_checked_when_declared(spec, error, match):
    with pytest.raises(error, match=match):
        base.Experiment(id="test.toy", paper="CKS", title="toy",
                        tiers=base.Tiers(quick=(), medium=(), full=()), claims={"test.toy.a": spec},
                        measure=None, decide=None, plot=None, tables=None)


def test_every_registered_claim_declares_its_kind_and_test():
    specs = [spec for e in base.REGISTRY.values() for spec in e.claims.values()]
    assert len(specs) >= 50 and all(spec.kind in base.CLAIM_KINDS and spec.test for spec in specs)


def test_select_by_id_and_prefix():
    assert [e.id for e in base.select(["cks.fig1"])] == ["cks.fig1"]
    assert "cks.fig1" in [e.id for e in base.select(["cks"])]
    with pytest.raises(KeyError, match="no experiment"):
        base.select(["cks.fig99"])


def test_reproduce_writes_report_and_resumes_from_cache(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["reproduce", "--only", "cks.fig1", "--out", str(out), "--no-progress"]) == 0
    for name in ["report.md", "report.html", "claims.json", "figures/cks.fig1.curves.png",
                 "figures/cks.fig1.curves.svg", "data/cks.fig1.curves.csv", "logs/cks.fig1.log",
                 "results/cks.fig1.json"]:
        assert (out / name).exists(), name
    claims = json.loads((out / "claims.json").read_text())
    assert {c["id"] for c in claims} == set(REGISTRY["cks.fig1"].claims)
    for c in claims:
        assert set(c) >= {"id", "statement", "held", "numbers", "settings", "experiment", "paper"}
        assert c["experiment"] == "cks.fig1" and c["paper"] == "CKS" and c["numbers"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src='figures/" not in html
    csv_header = (out / "data/cks.fig1.curves.csv").read_text().splitlines()[0]
    assert csv_header.startswith("x,F_eps")
    # second call: loaded from the cache, same claims
    records = run_experiments(base.select(["cks.fig1"]), out, progress=False, version="0.1.0")
    assert records[0].status == "cached"
    assert records[0].claims == claims
    # --force runs again
    records = run_experiments(base.select(["cks.fig1"]), out, force=True, progress=False,
                              version="0.1.0")
    assert records[0].status == "ran"


def test_a_failing_experiment_is_reported_and_the_exit_code_is_nonzero(tmp_path, monkeypatch):
    def broken(settings, context):
        raise FloatingPointError("loss became NaN at step 17")

    never = lambda settings, record: None  # noqa: E731  (measure fails first)
    exp = base.Experiment(id="test.broken", paper="CKS", title="broken",
                          tiers=base.Tiers(quick=(), medium=(), full=()),
                          claims={"test.broken": base.ClaimSpec("never decided", "paper", "none")}, measure=broken, decide=never,
                          plot=never, tables=never)
    monkeypatch.setitem(base.REGISTRY, "test.broken", exp)
    out = tmp_path / "report"
    code = cli.main(["reproduce", "--only", "test.broken", "cks.fig1", "--out", str(out),
                     "--no-progress"])
    assert code == 1
    assert "FloatingPointError" in (out / "logs/test.broken.log").read_text()
    assert "loss became NaN at step 17" in (out / "report.md").read_text()
    # the failure does not abort the others: cks.fig1 ran after it and its claims are reported
    claims = json.loads((out / "claims.json").read_text())
    assert {c["id"] for c in claims} == set(REGISTRY["cks.fig1"].claims)
    assert (out / "results/cks.fig1.json").exists() and not (out / "results/test.broken.json").exists()


def test_cli_list_and_unknown_id(capsys, tmp_path):
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "cks.fig1" in printed and "cks.fig1.large_eps" in printed
    assert cli.main(["reproduce", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err


def test_table1_limits_and_signs_hold():
    from adabias.experiments import cks_table1

    exp = REGISTRY["cks.table1"]
    result = exp.run(exp.settings_at("quick"), base.Context(progress=False))
    base.check_result(exp, result)
    assert all(c.held for c in result.claims), [c.numbers for c in result.claims if not c.held]
    # the small-ε limit error falls linearly in ε (slope 1 on log-log)
    eps = np.asarray(result.data["limits"]["eps"])
    error = np.asarray(result.data["limits"]["small_eps_error_b0.95_r0.9"])
    slope = np.polyfit(np.log(eps[:6]), np.log(error[:6]), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.05)
    assert cks_table1.SETTINGS.cells[0][0] > cks_table1.SETTINGS.cells[0][1]


def test_registry_holds_every_experiment_of_both_papers_in_their_order():
    from adabias.experiments import PAPER_ORDER

    assert list(REGISTRY) == list(PAPER_ORDER)
    for exp in REGISTRY.values():
        assert exp.paper in ("CKS", "LWL", "beyond") and exp.id.startswith(exp.paper.lower() + ".")
        assert exp.claims, f"{exp.id} declares no claim"


def test_compare_names_the_claims_whose_verdict_or_numbers_moved(tmp_path, capsys):
    import json

    old = [{"id": "a", "held": True, "numbers": {"x": 1.0, "v": [1.0, 2.0], "s": "t"}},
           {"id": "b", "held": True, "numbers": {"x": float("nan")}},
           {"id": "c", "held": False, "numbers": {"x": 3.0}}]
    new = [{"id": "a", "held": True, "numbers": {"x": 1.0 + 1e-12, "v": [1.0, 2.0 + 1e-6], "s": "t"}},
           {"id": "b", "held": True, "numbers": {"x": float("nan")}},
           {"id": "c", "held": True, "numbers": {"x": 3.0, "y": 1.0}}]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    code = cli.main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    printed = capsys.readouterr().out
    assert code == 1
    assert "v[1]: 2.0 -> 2.000001" in printed and "x" not in printed.split("a\n")[1].split("\n")[1]
    assert "held: False -> True" in printed and "y: only in the new file" in printed
    assert "\nb\n" not in printed and "2 claim(s) differ" in printed
    # a looser tolerance for one prefix accepts the 5e-7 move of claim a
    code = cli.main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                     "--loose", "a", "1e-5"])
    assert "1 claim(s) differ" in capsys.readouterr().out
    assert cli.main(["compare", str(tmp_path / "old.json"), str(tmp_path / "nope.json")]) == 2


def test_fig1_and_table1_verdicts_that_fail_say_why():
    from adabias.experiments import cks_table1

    settings = cks_fig1.SETTINGS
    record = cks_fig1.measure(settings, base.Context(progress=False))
    # every curve off by 1e-6 relative, and flipped in sign: no claim can hold
    broken = record._replace(curves=-(1 + 1e-6) * record.curves)
    verdicts = {v.claim_id: v for v in cks_fig1.decide(settings, broken).verdicts}
    assert not any(v.held for v in verdicts.values())
    assert all(v.note.strip() for v in verdicts.values())
    assert "differ by 2.00e+00 relative" in verdicts["cks.fig1.closed_form"].note
    assert "ρ = 0.9:" in verdicts["cks.fig1.small_eps_beta_ge_rho"].note
    assert "parabola" in verdicts["cks.fig1.large_eps"].note
    held = {v.claim_id: v for v in cks_fig1.decide(settings, record).verdicts}
    assert all(v.held and v.note == "" for v in held.values())

    table = cks_table1.SETTINGS
    ones = np.ones((len(table.cells), len(table.eps)))
    flat = cks_table1.Table1Record(np.ones(3), ones, ones, np.ones((2, len(table.eps), 3)))
    verdicts = {v.claim_id: v for v in cks_table1.decide(table, flat).verdicts}
    assert not any(v.held for v in verdicts.values())
    assert "relative error 1.00e+00 at ε = 1e-12" in verdicts["cks.table1.small_eps"].note
    assert "β = 0.9, ρ = 0.999: mean sign +1.00 at ε = 1e-12" in verdicts["cks.table1.signs"].note
    assert "ρ = 0.95" not in verdicts["cks.table1.signs"].note  # the β > ρ cell is right


def test_order_decisions_lead_with_their_numbers_and_say_why():
    from adabias import flows

    h = [0.04, 0.02, 0.01, 0.005]
    held, numbers = flows.decide_order(h, [x ** 1.5 for x in h], 2.0, points=3, tolerance=0.3)
    assert not held
    assert list(numbers)[:3] == ["fitted_order", "expected_order", "tolerance"]
    assert numbers["fitted_order"] == pytest.approx(1.5)
    assert flows.order_reason(numbers).startswith("the slope fitted on the 3 smallest h is 1.500, "
                                                  "outside 2 ± 0.3")
    assert held is False and flows.decide_order(h, [x ** 2 for x in h], 2.0, points=3,
                                                tolerance=0.3)[0]