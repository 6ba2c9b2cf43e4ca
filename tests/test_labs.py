"""Lab specs: references pass, the solution notebooks pass, misconceptions are detected and distinct."""
import copy
import itertools
from pathlib import Path

import nbformat
import numpy as np
import pytest

from coursekit.labs import spec
from coursekit.labs.questions import lab05

LABS = spec.all_labs()
QUESTIONS = [q for lab in LABS for q in lab.questions]
QIDS = [q.id for q in QUESTIONS]
MISCONCEPTIONS = [(q, m) for q in QUESTIONS for m in q.misconceptions]
SEEDS = (spec.PUBLIC_SEED, 7)


def _exercise_namespace(lab):
    """Run the lab's exercise cells, concatenated in order, as the grader does (NumPy only)."""
    nb = nbformat.read(spec.notebook_path(lab), as_version=4)
    cells = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    ns = {"__name__": "submission"}
    exec(compile("\n\n".join(c.source for c in cells), f"<{lab.id} exercises>", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def solutions():
    return {lab.id: _exercise_namespace(lab) for lab in LABS}


def _call(fn, inputs):
    with np.errstate(all="ignore"):
        return fn(**copy.deepcopy(inputs))


# ----------------------------------------------------------------------------- structure


def test_labs_and_lecture_exercises_with_notebooks():
    assert [lab.id for lab in LABS if lab.id.startswith("lab")] == ["lab01", "lab02", "lab03", "lab04", "lab05"]
    for lab in LABS:
        assert lab.folder == ("labs" if lab.id.startswith("lab") else "lectures")
        if lab.id.startswith("lec"):
            assert spec.notebook_path(lab).name.startswith(lab.id[3:] + "_"), lab.notebook
        path = spec.notebook_path(lab)
        assert path.is_file(), path
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["coursekit"]["lab"] == lab.id
        tagged = [t[2:] for c in nb.cells for t in c.metadata.get("tags", []) if t.startswith("q:")]
        assert tagged == [q.id for q in lab.questions]          # one cell per question, in order
        assert lab.points == sum(q.points for q in lab.questions) > 0


@pytest.mark.parametrize("question", QUESTIONS, ids=QIDS)
def test_question_well_formed(question):
    lab_id, fn = question.id.split(".")
    assert question.lab == lab_id and question.function == fn
    assert question.visible_cases(), "needs a visible case for the self-check"
    assert any(c.visibility == "hidden" for c in question.cases), "needs a hidden case"
    assert len({c.name for c in question.cases}) == len(question.cases)
    assert spec.get_question(question.id) is question


@pytest.mark.parametrize("question", QUESTIONS, ids=QIDS)
def test_case_inputs_deterministic_and_plain(question):
    for i in range(len(question.cases)):
        a, b = spec.case_inputs(question, i, 3), spec.case_inputs(question, i, 3)
        assert a.keys() == b.keys()
        for k in a:
            assert isinstance(a[k], (np.ndarray, int, float, bool)), (k, type(a[k]))
            assert np.array_equal(a[k], b[k])
    # another seed gives other inputs (the grader's secret seed hides the hidden cases' inputs)
    differs = []
    for i, case in enumerate(question.cases):
        a, b = spec.case_inputs(question, i, 3), spec.case_inputs(question, i, 4)
        differs.append(any(not np.array_equal(a[k], b[k]) for k in a))
    assert all(d for d, c in zip(differs, question.cases) if c.visibility == "hidden")


def test_bad_lookups():
    with pytest.raises(ValueError, match="get_lab: lab_id must be one of"):
        spec.get_lab("lab99")
    with pytest.raises(ValueError, match="get_question"):
        spec.get_question("nodot")
    with pytest.raises(ValueError, match="unknown question"):
        spec.get_question("lab01.nope")
    with pytest.raises(ValueError, match="case_index"):
        spec.case_inputs(QUESTIONS[0], 99, 0)
    with pytest.raises(ValueError, match="visibility"):
        spec.Case("x", lambda rng: {}, visibility="secret")


# ----------------------------------------------------------------------------- references and solutions


@pytest.mark.parametrize("question", QUESTIONS, ids=QIDS)
def test_reference_passes_every_case(question):
    for seed in SEEDS:
        for i, case in enumerate(question.cases):
            inputs = spec.case_inputs(question, i, seed)
            expected = question.reference(**inputs)
            v = spec.compare(question, inputs, _call(question.reference, inputs), expected, case=case)
            assert v.passed and v.fraction == 1.0 and v.misconception is None, (case.name, v.message)


@pytest.mark.parametrize("question", QUESTIONS, ids=QIDS)
def test_solution_notebook_passes_every_case(question, solutions):
    fn = solutions[question.lab][question.function]
    for seed in SEEDS:
        for i, case in enumerate(question.cases):
            inputs = spec.case_inputs(question, i, seed)
            expected = question.reference(**inputs)
            v = spec.compare(question, inputs, _call(fn, inputs), expected, case=case)
            assert v.passed, (seed, case.name, v.message)


def test_exercise_cells_need_numpy_only():
    for lab in LABS:
        nb = nbformat.read(spec.notebook_path(lab), as_version=4)
        for c in nb.cells:
            if "exercise" in c.metadata.get("tags", []):
                imports = {line.split()[1].split(".")[0] for line in c.source.splitlines()
                           if line.startswith(("import ", "from "))}
                assert imports <= {"numpy", "math"}, (c.id, imports)


# ----------------------------------------------------------------------------- misconceptions


@pytest.mark.parametrize("question,misconception", MISCONCEPTIONS,
                         ids=[f"{q.id}:{m.name}" for q, m in MISCONCEPTIONS])
def test_misconception_detected_by_name(question, misconception):
    """The variant fails some visible case and compare names it there; on cases it fails it is never
    mistaken for another misconception."""
    named = 0
    for i, case in question.visible_cases():
        inputs = spec.case_inputs(question, i, spec.PUBLIC_SEED)
        expected = question.reference(**inputs)
        v = spec.compare(question, inputs, _call(misconception.variant, inputs), expected, case=case)
        if not v.passed:
            assert v.misconception is not None and v.misconception.name == misconception.name, v.message
            assert misconception.message in v.message
            named += 1
    assert named >= 1


@pytest.mark.parametrize("question", [q for q in QUESTIONS if q.misconceptions], ids=lambda q: q.id)
def test_misconceptions_pairwise_distinguishable(question):
    """No two of {reference, variants...} give matching outputs on every visible case."""
    impls = [("reference", question.reference)] + [(m.name, m.variant) for m in question.misconceptions]
    outputs = {name: [] for name, _ in impls}
    cases = question.visible_cases()
    for i, case in cases:
        inputs = spec.case_inputs(question, i, spec.PUBLIC_SEED)
        for name, fn in impls:
            outputs[name].append(_call(fn, inputs))
    for (a, _), (b, _) in itertools.combinations(impls, 2):
        same = all(spec.compare(question, {}, outputs[a][k], outputs[b][k], case=case).passed
                   for k, (_, case) in enumerate(cases))
        assert not same, f"{a} and {b} agree on every visible case of {question.id}"


# ----------------------------------------------------------------------------- compare


def test_compare_diagnoses_without_raising():
    q = spec.get_question("lab03.batchnorm_backward")
    case = q.cases[0]
    inputs = spec.case_inputs(q, 0, 0)
    expected = q.reference(**inputs)
    dx, dgamma, dbeta = expected

    class Evil:
        def __array__(self, *a, **k):
            raise RuntimeError("boom")

    bad = [
        (None, "expected a tuple of 3 arrays"),
        ("text", "expected a tuple of 3 arrays"),
        ((dx, dgamma), "returned 2 values, expected 3"),
        ((dx, None, dbeta), "returned None as output 1"),
        ((dx, dgamma, "abc"), "dtype"),
        ((dx, Evil(), dbeta), "cannot be converted"),
        ((dx.T, dgamma, dbeta), "`dx` has shape"),
        ((dx.astype(int), dgamma, dbeta), "integer/bool dtype"),
        ((dx, dgamma * np.nan, dbeta), "nan/inf"),
    ]
    for got, fragment in bad:
        v = spec.compare(q, inputs, got, expected, case=case)
        assert not v.passed and v.fraction == 0.0 and fragment in v.message, (got, v.message)
    off = dx.copy()
    off[2, 1] += 1.0
    v = spec.compare(q, inputs, (off, dgamma, dbeta), expected, case=case)
    assert "1 of 24 elements differ" in v.message and "index (2, 1)" in v.message
    assert "max abs error 1" in v.message
    # hidden cases do not list indices
    v = spec.compare(q, inputs, (off, dgamma, dbeta), expected, case=q.cases[-1])
    assert "index" not in v.message
    # float32 answers pass within tolerance; lists are accepted as arrays
    v = spec.compare(q, inputs, [dx.astype(np.float32), list(dgamma), dbeta], expected, case=case)
    assert v.passed, v.message


def test_compare_single_output_and_tuple_confusion():
    q = spec.get_question("lab01.relu_backward")
    inputs = spec.case_inputs(q, 0, 0)
    expected = q.reference(**inputs)
    assert spec.compare(q, inputs, expected.tolist(), expected).passed
    v = spec.compare(q, inputs, (expected, expected), expected)
    assert not v.passed and "expected one array" in v.message


def test_challenge_partial_credit():
    q = spec.get_question("lab05.train_and_predict")
    case = q.cases[0]
    inputs = spec.case_inputs(q, 0, spec.PUBLIC_SEED)
    y = q.reference(**inputs)
    assert not np.array_equal(inputs["X_test"], inputs["X_train"][: len(y)])
    n = len(y)
    for accuracy, fraction in [(1.0, 1.0), (0.95, 1.0), (0.90, 0.5), (0.85, 0.0), (0.5, 0.0)]:
        got = y.copy()
        wrong = int(round((1 - accuracy) * n))
        got[:wrong] = (got[:wrong] + 1) % 10
        v = spec.compare(q, inputs, got, y, case=case)
        assert v.fraction == pytest.approx(fraction, abs=2 / n / 0.1), (accuracy, v.message)
        assert v.passed == (v.fraction >= 1.0)
        assert "test accuracy" in v.message
    assert not spec.compare(q, inputs, y[:-1], y, case=case).passed
    with pytest.raises(ValueError, match="not the test split"):
        q.reference(**{**inputs, "X_test": inputs["X_test"][::-1]})
    assert lab05.ZERO_CREDIT_ACCURACY < lab05.FULL_CREDIT_ACCURACY


def test_notebook_path_root(tmp_path):
    assert spec.notebook_path("lab03", tmp_path) == tmp_path / "labs" / "lab03_dropout_batchnorm.ipynb"
    assert Path(spec.notebook_path("lab01")).name == "lab01_activations.ipynb"


def test_scalar_outputs_accept_one_element_arrays():
    q = spec.get_question("lab04.selu_moments")
    inputs = spec.case_inputs(q, 1, 0)
    mu_t, nu_t = q.reference(**inputs)
    assert spec.compare(q, inputs, (float(mu_t), float(nu_t)), (mu_t, nu_t)).passed
    assert spec.compare(q, inputs, (np.array([mu_t]), np.array([nu_t])), (mu_t, nu_t)).passed
    v = spec.compare(q, inputs, (np.array([mu_t, mu_t]), nu_t), (mu_t, nu_t))
    assert not v.passed and "`mu_out` has shape (2,)" in v.message
