"""The ``otklik`` command: what the make targets call."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from otklik import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otklik", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the demo feed once through the local stack and print a summary")
    run.add_argument(
        "--emulators",
        choices=["auto", "gcloud", "standalone"],
        default=None,
        help="which emulators (default: $OTKLIK_EMULATORS or auto)",
    )
    run.add_argument("--work-dir", type=Path, default=None, help="logs and rendered config (default: temp)")

    dev = sub.add_parser("dev", help="keep the local stack up; ingest every --ingest-every seconds")
    dev.add_argument("--emulators", choices=["auto", "gcloud", "standalone"], default=None)
    dev.add_argument("--work-dir", type=Path, default=REPO_ROOT / ".otklik" / "dev")
    dev.add_argument("--ingest-every", type=float, default=60.0)

    seed = sub.add_parser("seed", help="validate config files and load departments and rules into Firestore")
    seed.add_argument("--config-dir", type=Path, default=REPO_ROOT / "config")
    seed.add_argument("--check", action="store_true", help="only validate, write nothing")

    token = sub.add_parser("token", help="issue or revoke a department's API token (stored hashed in Firestore)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="make a new token and print it once; give it to the department")
    issue.add_argument("department", help="department id from the directory")
    issue.add_argument("--label", default="", help="who it is for, e.g. the department's system or clerk")
    revoke = token_sub.add_parser("revoke", help="revoke every token of a department")
    revoke.add_argument("department")

    report = sub.add_parser(
        "report",
        help="incidents of a period from Firestore: counts, reply and resolution times, deadlines, trend "
        "against the previous period of the same length",
    )
    report.add_argument("--from", dest="start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    report.add_argument(
        "--to", dest="end", type=date.fromisoformat, required=True, help="day after the last, YYYY-MM-DD (excluded)"
    )
    report.add_argument("--municipality", default=None, help="municipality id (gazetteer), e.g. shakhty")
    report.add_argument("--format", dest="fmt", choices=["md", "csv", "json", "html"], default="md")
    report.add_argument("--output", type=Path, default=None, help="file to write (default: standard output)")
    feedback = sub.add_parser(
        "corpus-feedback",
        help="the operator's verdicts from triage (not a complaint, corrected category) as corpus lines (JSONL)",
    )
    feedback.add_argument("--output", type=Path, default=None, help="e.g. corpus/feedback.jsonl (default: stdout)")

    schemas = sub.add_parser("schemas", help="write the JSON Schema of every message contract")
    schemas.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "schemas")

    build = sub.add_parser("build", help="build one deployable folder per function")
    build.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "functions")

    sub.add_parser(
        "classify",
        help="classify posts: JSON Lines on stdin ({text, source?, community?, geo?: {lat, lon}, municipality?}), "
        "one JSON object per line on stdout; a line that cannot be read gets {error} and the exit status is 1",
    )
    trainer = sub.add_parser("train", help="fit the classifier's model on the corpus (scikit-learn)")
    trainer.add_argument(
        "--force", action="store_true", help="write the model even if it scores lower on the real development set"
    )
    evaluate = sub.add_parser("eval", help="measure the shipped classifier on the corpus's held-out split")
    evaluate.add_argument("--split", choices=["held-out", "train", "all"], default="held-out")
    real = sub.add_parser("eval-real", help="measure the shipped classifier on real posts (../shared/eval)")
    real.add_argument("--path", type=Path, default=None, help="a JSON Lines file of labelled real posts")
    sub.add_parser(
        "eval-grouping",
        help="measure which posts are grouped into one incident on corpus/grouping/pairs.jsonl (held-out pairs)",
    )

    args = parser.parse_args(argv)
    handler = {
        "run": _run,
        "dev": _dev,
        "seed": _seed,
        "token": _token,
        "report": _report,
        "corpus-feedback": _corpus_feedback,
        "schemas": _schemas,
        "build": _build,
        "classify": _classify,
        "train": _train,
        "eval": _eval,
        "eval-grouping": _eval_grouping,
        "eval-real": _eval_real,
    }[args.command]
    return handler(args)


def _classify(args: argparse.Namespace) -> int:
    from otklik.classifier.stdio import classify_lines

    return classify_lines(sys.stdin, sys.stdout)


def _train(args: argparse.Namespace) -> int:
    from otklik.classifier.train import train

    info = train(force=args.force)
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0 if info.get("written") else 1


def _eval(args: argparse.Namespace) -> int:
    from otklik.classifier.evaluate import main as evaluate

    return evaluate(args.split)


def _eval_real(args: argparse.Namespace) -> int:
    from otklik.classifier.evaluate_real import main as evaluate_real

    return evaluate_real(args.path)


def _eval_grouping(args: argparse.Namespace) -> int:
    from otklik.classifier.grouping_eval import main as evaluate_grouping

    return evaluate_grouping()


def _run(args: argparse.Namespace) -> int:
    from otklik.stack.demo import run_once
    from otklik.stack.processes import install_signal_handlers

    install_signal_handlers()
    with tempfile.TemporaryDirectory(prefix="otklik-run-") as tmp:
        work_dir = args.work_dir or Path(tmp)
        summary = run_once(work_dir, args.emulators)
    print(summary.render())
    return 0 if summary.unaccounted == 0 and not summary.source_errors else 1


def _dev(args: argparse.Namespace) -> int:
    from otklik.stack.local import LocalStack
    from otklik.stack.processes import install_signal_handlers

    install_signal_handlers()
    with LocalStack(args.work_dir, emulators_kind=args.emulators) as stack:
        assert stack.emulators is not None
        print(f"Local stack up in {stack.started_in:.1f}s ({stack.emulators.kind} emulators). Ctrl-C stops it.")
        for key, value in sorted(stack.function_env().items()):
            if "TOKEN" not in key and "PASSWORD" not in key:
                print(f"  {key}={value}")
        for name, server in stack.servers.items():
            print(f"  function {name:<9} {server.url}")
        print(f"  webhook sink    {stack.webhooks.url}\n  SMTP sink       {stack.smtp.host}:{stack.smtp.port}")
        print(f"  logs            {stack.log_dir}")
        try:
            while True:
                report = stack.fire_ingest()
                print(f"ingest: published {report['published']}", flush=True)
                time.sleep(args.ingest_every)
        except KeyboardInterrupt:
            print("stopping")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from otklik.seed import seed

    return seed(args.config_dir, write=not args.check)


def _token(args: argparse.Namespace) -> int:
    from google.cloud import firestore

    from shared.adapters.firestore import FirestoreDepartmentTokens, FirestoreRouting
    from shared.config import Settings
    from shared.domain.models import utcnow
    from shared.services import tokens

    settings = Settings()
    db = firestore.Client(project=settings.project_id, database=settings.firestore_database)
    store = FirestoreDepartmentTokens(db)
    if args.token_command == "revoke":  # noqa: S105 - a sub-command's name, not a password
        print(f"revoked {store.revoke_all(args.department)} tokens of {args.department}")
        return 0
    routing = FirestoreRouting(db).load() or settings.routing
    if args.department not in {d.id for d in routing.departments}:
        print(f"no department {args.department!r} in the directory (run `make seed` first?)", file=sys.stderr)
        return 2
    # The only time the token is shown: Firestore keeps its SHA-256 digest.
    print(tokens.issue(store, args.department, args.label, utcnow()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from google.cloud import firestore

    from shared.adapters.firestore import FirestoreIncidents, FirestoreRouting
    from shared.config import Settings
    from shared.domain.models import utcnow
    from shared.report_names import report_names
    from shared.services.report_render import render
    from shared.services.reports import REPORT_ZONE, report_for

    if args.end <= args.start:
        print("--to must be after --from (it is the day after the period's last day)", file=sys.stderr)
        return 2
    # Days are the regions' own (Europe/Moscow): a day's report is that local day, midnight to midnight.
    start = datetime.combine(args.start, datetime.min.time(), REPORT_ZONE).astimezone(UTC)
    end = datetime.combine(args.end, datetime.min.time(), REPORT_ZONE).astimezone(UTC)
    settings = Settings()
    db = firestore.Client(project=settings.project_id, database=settings.firestore_database)
    names = report_names(FirestoreRouting(db).load() or settings.routing)
    built = report_for(FirestoreIncidents(db), start, end, utcnow(), args.municipality, names)
    text = render(built, args.fmt)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(args.output)
    return 0


def _corpus_feedback(args: argparse.Namespace) -> int:
    from google.cloud import firestore

    from shared.adapters.firestore import FirestoreCorpusFeedback
    from shared.config import Settings
    from shared.report_names import municipality_names
    from shared.services.triage import corpus_lines

    settings = Settings()
    db = firestore.Client(project=settings.project_id, database=settings.firestore_database)
    lines = corpus_lines(FirestoreCorpusFeedback(db).all(), municipality_names())
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output}: {len(lines)} posts", file=sys.stderr)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from shared.contracts import json_schemas

    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (args.out / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(args.out / name)
    return 0


def _build(args: argparse.Namespace) -> int:
    from otklik.build import build

    for folder in build(args.out):
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
