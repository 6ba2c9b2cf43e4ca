"""The ``coursekit`` command.

    coursekit grade LAB.ipynb SUBMISSION... --out DIR [--jobs N] [--seed S] [--timeout T] [--regrade-failed]
                    [--no-sandbox]
    coursekit grade --setup-sandbox [--force]
    coursekit release SOLUTION.ipynb... --out DIR
    coursekit gradescope-bundle LAB.ipynb --out autograder.zip [--no-sandbox --expose-solution]

A SUBMISSION is a student's notebook (student id = file stem) or a folder of them. Heavy modules
are imported only by the subcommand that needs them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["main", "build_parser"]


def _positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {s}")
    return v


def _seed(s):
    v = int(s, 0)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {s}")
    return v


def _timeout(s):
    v = float(s)
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"must be in (0, 3600] seconds, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="coursekit", description="trainingtips course tools.")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade student notebooks in a sandbox",
                       description="Grade submissions of a lab. Each submission's answer cells run in a "
                                   "bubblewrap sandbox (NumPy only, no network, rlimits, timeout); the grader "
                                   "compares the returned arrays with coursekit's references.")
    g.add_argument("lab", nargs="?", help="the lab's solution notebook (metadata.coursekit.lab names the lab)")
    g.add_argument("submissions", nargs="*", help="student notebooks or folders of them (id = file stem)")
    g.add_argument("--out", help="output folder (grades.csv, feedback/, gradescope/, report.html, .state/)")
    g.add_argument("--jobs", "-j", type=_positive_int, default=None, help="parallel sandboxes (default: all cores)")
    g.add_argument("--seed", type=_seed, default=None,
                   help="seed of the test inputs (default: a secret one from os.urandom, reused when DIR is "
                        "graded again so unchanged submissions are not regraded)")
    g.add_argument("--timeout", type=_timeout, default=None, help="seconds per submission (default: the lab's)")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run WITHOUT bubblewrap (trusted code only; prints what is unprotected; the output "
                        "folder is made 0700)")
    g.add_argument("--regrade-failed", action="store_true",
                   help="grade again the submissions whose stored result crashed, timed out or hit a limit "
                        "(unchanged submissions are otherwise taken from DIR/.state)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--lab-spec", default=None, metavar="FILE.py[:NAME]",
                   help="a Lab defined outside coursekit (default: looked up from the notebook's metadata)")
    g.add_argument("--setup-sandbox", action="store_true",
                   help="install bubblewrap (as root, with apt-get; otherwise print the command), build the "
                        "sandbox venv (numpy only) at $COURSEKIT_SANDBOX_VENV or "
                        "/var/cache/coursekit/sandbox-venv, then exit")
    g.add_argument("--force", action="store_true", help="with --setup-sandbox: rebuild even if present")

    r = sub.add_parser("release", help="write the student version of solution notebooks")
    r.add_argument("notebooks", nargs="+")
    r.add_argument("--out", required=True, help="output folder")

    b = sub.add_parser("gradescope-bundle", help="build a Gradescope autograder zip")
    b.add_argument("lab", help="the lab's solution notebook")
    b.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    b.add_argument("--no-sandbox", action="store_true",
                   help="let run_autograder grade without bubblewrap; needs --expose-solution too")
    b.add_argument("--expose-solution", action="store_true",
                   help="confirm --no-sandbox: the student's code can then read the solution notebook, the "
                        "hidden inputs and the grader's files in the Gradescope container")
    b.add_argument("--lab-spec", default=None, metavar="FILE.py[:NAME]", help="a Lab defined outside coursekit")
    return ap


def _grade(args, ap) -> int:
    from coursekit.grade import sandbox as sbx
    if args.setup_sandbox:
        ok, what = sbx.install_bubblewrap()
        print(f"coursekit grade: {what}", file=sys.stderr if not ok else sys.stdout)
        try:
            path = sbx.setup_sandbox(force=args.force)
        except (ValueError, RuntimeError) as e:
            print(f"coursekit grade: {e}", file=sys.stderr)
            return 1
        print(f"coursekit grade: sandbox venv ready at {path}")
        return 0 if ok else 4
    if not args.lab or not args.submissions or not args.out:
        ap.error("grade: LAB.ipynb, at least one SUBMISSION and --out DIR are required "
                 "(or --setup-sandbox)")
    from coursekit.grade.engine import Grader, load_lab_spec
    from coursekit.grade.notebook import SubmissionError, read_notebook
    t0 = time.perf_counter()
    try:
        kw = {}
        if args.lab_spec:
            kw["lab"] = load_lab_spec(args.lab_spec)
            try:
                kw["solution_nb"] = read_notebook(args.lab)
            except SubmissionError as e:
                raise ValueError(f"grade: lab notebook {args.lab!r}: {e.message}") from None
        grader = Grader(args.lab, args.out, jobs=args.jobs, seed=args.seed, sandbox=not args.no_sandbox,
                        timeout=args.timeout, progress=not args.no_progress, regrade_failed=args.regrade_failed,
                        **kw)
        records = grader.grade(args.submissions)
    except sbx.SandboxUnavailable as e:
        print(f"coursekit grade: refusing to run student code: {e}\n"
              f"  (install bubblewrap, or pass --no-sandbox for code you trust)", file=sys.stderr)
        return 3
    except ValueError as e:
        print(f"coursekit grade: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    total = sum(r["score"] for r in records)
    bad = [r for r in records if r["status"] != "ok"]
    mean = total / len(records) if records else 0.0
    print(f"coursekit grade: {len(records)} submissions of {grader.lab.id} in {dt:.1f} s "
          f"(mean {mean:.2f} / {grader.lab.points:g}; {len(bad)} not status ok) -> "
          f"{os.path.join(args.out, 'grades.csv')}")
    if grader.unfinished:   # worker threads that are stuck would keep the interpreter alive
        print(f"coursekit grade: {len(grader.unfinished)} submissions were not graded within the run's bound; "
              f"their rows say so and the next run grades them", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(5)
    return 0


def _release(args) -> int:
    from coursekit.labs.release import release
    for nb in args.notebooks:
        try:
            print(release(nb, args.out))
        except ValueError as e:
            print(f"coursekit release: {e}", file=sys.stderr)
            return 2
    return 0


def _bundle(args) -> int:
    from coursekit.grade.gradescope import bundle
    if args.no_sandbox and not args.expose_solution:
        print("coursekit gradescope-bundle: --no-sandbox lets every student's code read the solution notebook, "
              "the hidden inputs and the grader's files inside the Gradescope container; pass "
              "--expose-solution as well if that is what you want", file=sys.stderr)
        return 2
    try:
        path = bundle(args.lab, args.out, no_sandbox=args.no_sandbox, lab_spec=args.lab_spec)
    except (ValueError, OSError) as e:
        print(f"coursekit gradescope-bundle: {e}", file=sys.stderr)
        return 2
    print(f"coursekit gradescope-bundle: wrote {path}")
    return 0


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "grade":
        return _grade(args, ap)
    if args.command == "release":
        return _release(args)
    return _bundle(args)


if __name__ == "__main__":
    sys.exit(main())
