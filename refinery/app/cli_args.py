"""The `refinery` command line's arguments: every command, option and help text.

Kept apart from `cli.py` (which runs the commands) so each stays one job; `refinery --help`
and each `refinery COMMAND --help` are the command-line docs.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from refinery.app.exit_codes import EXIT_USAGE

API_HELP = (
    "the wire: responses (POST /v1/responses), chat (POST /v1/chat/completions with a strict json_schema "
    "response_format: vLLM, Ollama, LM Studio, llama.cpp, LiteLLM, OpenRouter) or auto (default: Responses where "
    "the endpoint answers it, else Chat Completions)"
)
STORE_HELP = (
    "how stages read the trace: hosted (upload to a vector store, file_search), none (no upload: each stage "
    "given inline what it reads, within the input budget) or auto (default: hosted on OpenAI's and Azure "
    "OpenAI's API hosts, none elsewhere, decided with no request; a gateway in front of OpenAI takes hosted)"
)
SEARCH_CALLS_HELP = (
    "with no store: offer each request the function search_trace (answered by refinery from a full-text index of "
    "the run files) and answer up to N calls of it a request; the server must take function tools (default: 0, "
    "not offered)"
)
BASE_MODEL_HELP = (
    "the model --model is, when its name does not say (an Azure OpenAI deployment): context window, prices and "
    "reasoning are looked up for it (default: --model)"
)
# The loaders `--format` forces (`refinery.traces.loader.formats()`; a test keeps the two equal)
FORMATS = [
    "inspect",
    "langfuse",
    "langsmith",
    "openai_agents",
    "openhands",
    "otel",
    "plain",
    "swe_agent",
    "taubench",
]

EXIT_CODES_HELP = """exit codes:
  0  done
  2  bad usage or bad input (missing file, unrecognised trace, bad expectation)
  3  authentication, quota or connection problem (key, account, base URL)
  4  the analysis failed (rate limits that never cleared, unusable output, server errors)
  5  batch, eval: some traces failed, the others were analysed (each failed one is named)
     (batch, eval: 0 when every trace was analysed; when none could be, the code of their one
     cause, 2 or 3, else 4)
  130 interrupted (Ctrl-C), 143 stopped by SIGTERM (even with SIGINT ignored, as in cron or nohup):
      rerun the same command to resume"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own exit code for usage errors is 2 too
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"refinery: error: {message}\n")


MODEL_HELP = "the OpenAI model every stage uses, e.g. gpt-4o, gpt-4.1, o4-mini (default: gpt-4o)"


def positive_int(text: str) -> int:
    """An option that counts things at once: 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """A timeout: more than 0 seconds."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def non_negative_float(text: str) -> float:
    """Seconds and money: 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


class _Version(argparse.Action):
    """`--version`, its number looked up only when asked: importlib.metadata costs a bare `--help` a
    third of its start-up."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        sys.stdout.write(f"refinery {_version()}\n")  # on stdout, as argparse's own `version` action
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("refinery-analyst")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from refinery import __version__

        return __version__


def _redact_pattern(parser: argparse.ArgumentParser) -> None:
    """`--redact-pattern REGEX`, on every command that redacts what it sends and writes."""
    parser.add_argument(
        "--redact-pattern",
        action="append",
        default=[],
        metavar="REGEX",
        help="also redact what this regular expression matches (repeatable): an organisation's own secret shapes",
    )


ANNOTATE_HELP = (
    "with a trace by id (phoenix:, langfuse:, langsmith:): write the diagnosis back to that platform — the verdict "
    "on the trace, the decisive step and each verified error on its span (refinery.verdict, refinery.decisive_step, "
    "refinery.error); a rerun updates them; a folder already analysed is annotated without a new analysis"
)


def _model_flags(p: argparse.ArgumentParser) -> None:
    """`--model` and `--base-model`, alike wherever an analysis is made or planned."""
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    p.add_argument("--base-model", metavar="MODEL", help=BASE_MODEL_HELP)


def _stage1_flags(p: argparse.ArgumentParser) -> None:
    """How Stage 1's groups are sized and run: the same for a run and for its plan."""
    p.add_argument(
        "--concurrency", type=positive_int, default=4, metavar="N", help="stage 1 groups in flight at once (default: 4)"
    )
    p.add_argument(
        "--context-window", type=int, metavar="TOKENS", help="the model's context window, if not in refinery's table"
    )


def _reading_flags(p: argparse.ArgumentParser, *, api: bool) -> None:
    """Which wire (`--api`, where asked) and where the trace is read from (`--store`, `--search-calls`)."""
    if api:
        p.add_argument("--api", choices=["auto", "responses", "chat"], default="auto", help=API_HELP)
    p.add_argument("--store", choices=["auto", "hosted", "none"], default="auto", help=STORE_HELP)
    p.add_argument("--search-calls", type=int, default=0, metavar="N", help=SEARCH_CALLS_HELP)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    trace_inputs = _Parser(add_help=False)
    trace_inputs.add_argument(
        "trace",
        metavar="TRACE",
        help="trace file: LangSmith, OTLP/OpenInference, Langfuse, an Inspect AI log (.json/.eval), τ-bench results, "
        "or a chat/step log (JSON/JSONL); or a trace by id: langsmith:<id>, langfuse:<id>, phoenix:<id>",
    )
    trace_inputs.add_argument(
        "--project",
        metavar="NAME",
        help="with a phoenix:<trace-id>: the Phoenix project holding it (default: PHOENIX_PROJECT, else every "
        "project is searched)",
    )
    trace_inputs.add_argument("--prompts", nargs="+", metavar="FILE", default=[], help="the agent's prompt files")
    trace_inputs.add_argument("--evals", nargs="+", metavar="FILE", default=[], help="the agent's eval files")
    trace_inputs.add_argument("--format", choices=FORMATS, help="force the trace format (default: detect)")
    trace_inputs.add_argument(
        "--sample",
        metavar="ID",
        help="the trace to take from a file holding several (an Inspect log's sample id, ID:EPOCH when the log ran "
        "it in several epochs; a τ-bench task id); `plan` plans them all without it, `batch` analyses them all",
    )
    trace_inputs.add_argument(
        "--no-redact", action="store_true", help="upload secrets as they are (redaction is on by default)"
    )
    _redact_pattern(trace_inputs)

    reading = _Parser(add_help=False)
    reading.add_argument(
        "--stage1-reading",
        choices=["inline", "search"],
        default="inline",
        help="how stage 1 reads the runs: inline (default: each group's run files whole in its prompt, the store "
        "searched for the rest) or search (only what file_search returns)",
    )
    reading.add_argument(
        "--reasoning-effort",
        metavar="EFFORT",
        help="reasoning.effort for reasoning models (o-series, gpt-5), e.g. minimal, low, medium, high; each "
        "stage's output budget grows by a reasoning allowance to match (default: the API's, medium; ignored for "
        "other models)",
    )

    reading.add_argument("--api", choices=["auto", "responses", "chat"], default="auto", help=API_HELP)
    where = _Parser(add_help=False)
    _reading_flags(where, api=False)

    analysis = _Parser(add_help=False)
    analysis.add_argument(
        "--expect",
        metavar="FILE",
        help="what the expert expected: JSON {description, expected_output, business_context, specific_issues} or "
        "plain text (`run`: default the task the trace states, if it states one; `analyze` has no trace and needs it)",
    )
    analysis.add_argument(
        "--out",
        metavar="DIR",
        help="artifacts directory (default: refinery-out/<trace id>, one folder per trace — `analyze`: "
        "refinery-out/<store id>); a rerun resumes from it",
    )
    analysis.add_argument(
        "--fresh",
        action="store_true",
        help="start over in --out: delete the store and files a run recorded there and its results first (without "
        "it, a folder holding results of another trace, model, expectation, prompts or evals is refused, exit 2)",
    )
    _model_flags(analysis)
    analysis.add_argument("--stages", default="1-4", help="stages to run, 1-N (default: 1-4)")
    analysis.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds one API request may take (default: 300)",
    )
    analysis.add_argument(
        "--max-cost",
        type=non_negative_float,
        metavar="USD",
        help="stop before the estimated spend could pass USD (what was done is kept; rerun to continue)",
    )
    _stage1_flags(analysis)

    parser = _Parser(
        prog="refinery",
        description="Find out why an AI agent run failed: four evidence-backed stages over an OpenAI hosted vector "
        "store.",
        epilog="environment: OPENAI_API_KEY (required except for plan), OPENAI_BASE_URL, OPENAI_PROJECT, "
        "OPENAI_ORG_ID\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, summary: str, description: str, parents: list[_Parser]) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=parents,
            help=summary,
            description=f"{summary}.\n\n{description}",
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command(
        "demo",
        "see the whole pipeline work on an example trace, with no key and no network",
        "Starts refinery's own OpenAI-compatible test server in this process on a free loopback port, uploads a\n"
        "packaged example trace, runs the four stages and writes the report. The answers come from the server's\n"
        "stand-in model (a deterministic test double), not from an analysis. Start here after installing.",
        [common],
    )
    p.add_argument(
        "--out",
        default="refinery-demo",
        metavar="DIR",
        help="where the artifacts and report go (default: refinery-demo)",
    )

    p = command(
        "init",
        "render, upload and index a trace; print the vector store id",
        "Renders the trace as citable files, uploads them to a new OpenAI vector store and waits until they are\n"
        "indexed. Use `refinery analyze --store ID` to run the stages on it later.",
        [common, trace_inputs],
    )
    p.add_argument("--name", help="vector store name (default: refinery-<trace id>)")
    p.add_argument(
        "--expires-days", type=int, default=1, metavar="D", help="delete the store D days after last use (default: 1)"
    )
    p.add_argument("--expect", metavar="FILE", help="also upload the expectations")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds one API request may take (default: 300)",
    )

    p = command(
        "analyze",
        "run the stages on a store made by `refinery init`",
        "Runs stages 1-N (trace analysis, gap analysis, diagnosis, synthesis) on an existing vector store and\n"
        "writes the artifacts and the report to --out; a rerun resumes from the first missing stage.",
        [common, analysis, reading],
    )
    p.add_argument("--store", required=True, metavar="ID", help="vector store id printed by `refinery init`")

    p = command(
        "run",
        "analyse one trace end to end (init + analyze)",
        "Uploads the trace, runs the four stages and writes stage artifacts, report.md, report.html and\n"
        "usage.json to --out. Rerunning the same command resumes; the store is deleted after success.\n"
        "No key yet? `refinery demo` shows the same pipeline against the bundled test server.",
        [common, trace_inputs, analysis, reading, where],
    )
    p.add_argument("--keep-store", action="store_true", help="keep the vector store after a successful run")
    p.add_argument("--expires-days", type=int, default=1, metavar="D", help="store expiry after last use (default: 1)")
    p.add_argument("--annotate", action="store_true", help=ANNOTATE_HELP)

    p = command(
        "plan",
        "show what a run would upload and send (no key, no network)",
        "Renders the trace, prints the files with their sizes and each stage's request with token estimates.\n"
        "Nothing is sent anywhere.",
        [common, trace_inputs, reading, where],
    )
    p.add_argument(
        "--expect", metavar="FILE", help="the expectation file (default: the task the trace states, if it states one)"
    )
    _model_flags(p)
    p.add_argument(
        "--latency",
        type=non_negative_float,
        default=15.0,
        metavar="S",
        help="seconds one call takes, for the duration estimate (default: 15)",
    )
    _stage1_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 2 when a request would exceed the context budget")
    p.add_argument("--verbose", action="store_true", help="also list every file and request")
    p.add_argument("--show-bodies", action="store_true", help="print the request bodies in full")
    p.add_argument(
        "--batch-api",
        action="store_true",
        help="plan a `batch --batch-api` run: read inline, priced at the Batch API's rate (half)",
    )
    p.add_argument(
        "--compare-reading",
        action="store_true",
        help="also show stage 1's tokens and cost read the other way (inline / search)",
    )

    p = command(
        "batch",
        "analyse many traces under one rate budget",
        "Analyses every trace of a folder (or a JSON manifest) concurrently through one client whose rate budget\n"
        "learns the project's TPM/RPM; one folder per trace, summary.json, summary.md and summary.html as results\n"
        "arrive.",
        [common, reading, where],
    )
    _redact_pattern(p)
    p.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        help="a folder of traces (with optional <stem>.expect.json beside each), a JSON manifest, or a file holding "
        "several traces; not with --from",
    )
    p.add_argument(
        "--from",
        dest="from_platform",
        choices=["langsmith", "langfuse", "phoenix"],
        help="list the traces to analyse from this platform instead (with --since and --failed; LangSmith also needs "
        "--project, Phoenix takes one)",
    )
    p.add_argument("--since", metavar="AGE", help="with --from: how far back, e.g. 90m, 24h, 7d")
    p.add_argument("--failed", action="store_true", help="with --from: the traces that failed (the only kind listed)")
    p.add_argument(
        "--project",
        metavar="NAME",
        help="with --from langsmith: the project (tracing session) name; with --from phoenix: the project (default: "
        "every project)",
    )
    p.add_argument(
        "--no-llm", action="store_true", help="group failures into patterns without the model's merge-and-name call"
    )
    p.add_argument("--annotate", action="store_true", help=ANNOTATE_HELP)
    p.add_argument("--expect", metavar="FILE", help="the expectation for traces that have none of their own")
    p.add_argument(
        "--out",
        default="refinery-batch",
        metavar="DIR",
        help="one folder per trace, plus summary.json, summary.md and summary.html (default: refinery-batch)",
    )
    _model_flags(p)
    p.add_argument(
        "--concurrency", type=positive_int, default=8, metavar="N", help="analyses in flight at once (default: 8)"
    )
    p.add_argument(
        "--tpm",
        type=positive_int,
        metavar="N",
        help="tokens-per-minute limit (default: learned from the API's headers)",
    )
    p.add_argument(
        "--rpm",
        type=positive_int,
        metavar="N",
        help="requests-per-minute limit (default: learned from the API's headers)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds one API request may take (default: 300)",
    )
    p.add_argument(
        "--max-cost",
        type=non_negative_float,
        metavar="USD",
        help="stop the whole batch before the estimated spend could pass USD",
    )
    _batch_api_flags(p)

    p = command(
        "eval",
        "score diagnoses against a labelled benchmark (Who&When, TRAIL)",
        "Analyses each labelled failure through the batch runner (or, with --score, reads predictions made\n"
        "elsewhere), turns each diagnosis into the benchmark's prediction shape, and scores it with the\n"
        "benchmark's metrics beside a uniform-guess baseline on the same files and the paper's figures.\n"
        "Writes eval.json and eval.md to --out. Against the test server the figures are the stand-in's.",
        [common],
    )
    bench = p.add_subparsers(dest="benchmark", required=True, parser_class=_Parser, metavar="BENCHMARK")
    evals = _Parser(add_help=False)
    evals.add_argument("--out", metavar="DIR", help="runs, predictions, eval.json and eval.md (needed unless --score)")
    evals.add_argument("--score", metavar="PRED_DIR", help="score these predictions instead of running analyses")
    evals.add_argument("--limit", type=positive_int, metavar="N", help="only the first N items")
    evals.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    _reading_flags(evals, api=True)
    evals.add_argument(
        "--concurrency", type=positive_int, default=4, metavar="N", help="analyses in flight at once (default: 4)"
    )
    evals.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds one API request may take (default: 300)",
    )

    def benchmark(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return bench.add_parser(
            name,
            parents=[common, evals],
            help=help,
            description=description,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    w = benchmark(
        "who-and-when",
        help="agent and step that made a multi-agent run fail",
        description="Who&When logs: DIR holds the logs, or subfolders of them (algorithm-generated, hand-crafted).",
    )
    w.add_argument("data", metavar="DIR", help="a folder of Who&When logs (or of subfolders of them)")
    w.add_argument(
        "--with-answer",
        action="store_true",
        help="give the analyst the task's ground-truth answer (the paper's 'with ground truth' setting)",
    )
    t = benchmark(
        "trail",
        help="which spans hold errors, and of which kind",
        description="TRAIL: TRACES holds the trace files, ANNOTATIONS the labels (each may have gaia/, swe_bench/ "
        "subfolders).",
    )
    t.add_argument(
        "data",
        metavar="TRACES",
        help="a folder of TRAIL traces (with --score, the annotations alone will do: "
        "`refinery eval trail ANNOTATIONS --score PRED_DIR`)",
    )
    t.add_argument("annotations", metavar="ANNOTATIONS", nargs="?", help="the folder of their annotations")
    lab = benchmark(
        "labels",
        help="your own labels: several failures a trace, one the root cause",
        description="LABELS/<name>.json = {failures: [{step, agent, category}], root_cause: N} for TRACES/<name>.json, "
        'or for the trace the label file names ("trace": "langsmith:<id>", a path); then LABELS alone will do, as '
        "with --score.",
    )
    lab.add_argument(
        "data", metavar="TRACES", help="a folder of traces, any format refinery loads (or, alone, the LABELS folder)"
    )
    lab.add_argument("annotations", metavar="LABELS", nargs="?", help="the folder of label files")
    lab.add_argument(
        "--step-base", type=int, choices=[0, 1], default=0, help="steps in the labels count from 0 (default) or 1"
    )

    p = command(
        "canary",
        "check key, base URL and model with the smallest request",
        "Sends one tiny strict-JSON request and says plainly what is wrong if it fails.",
        [common],
    )
    p.add_argument("--model", default="gpt-4o", help="the model to try (default: gpt-4o)")
    p.add_argument("--api", choices=["auto", "responses", "chat"], default="auto", help=API_HELP)

    p = command(
        "patterns",
        "the few causes behind a batch's failures, ranked",
        "Groups the analysed traces of one or more `refinery batch` output folders (e.g. a week of nightly runs)\n"
        "by their failing run and its error text with numbers, ids, quotes, paths and URLs set aside (a failure\n"
        "no run states: by what the tool call the diagnosis rests on said), and ranks the groups by how many\n"
        "traces they hold; then one model call merges the groups that describe one cause, splits a group that\n"
        "holds several, and names them (--no-llm: none). `batch` writes the same table into its summaries.",
        [common],
    )
    p.add_argument("--no-llm", action="store_true", help="no model call: the deterministic groups only")
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    p.add_argument(
        "--max-cost", type=non_negative_float, metavar="USD", help="skip the model call if it could pass USD"
    )
    p.add_argument("folders", nargs="+", metavar="OUT_DIR", help="folders `refinery batch` wrote (summary.json)")

    p = command(
        "mcp",
        "serve refinery's tools to other agents (Model Context Protocol)",
        "Tools: plan_trace, analyze_trace, read_report, list_runs, find_patterns. Over stdio by default, or\n"
        "streamable HTTP with --http PORT (127.0.0.1 unless --host). Every path a caller gives must lie inside\n"
        "a --root folder. Needs the mcp extra: pip install 'refinery-analyst[mcp]'.",
        [common],
    )
    p.add_argument("--root", action="append", required=True, metavar="DIR", help="a folder the tools may use (repeat)")
    p.add_argument("--http", type=positive_int, metavar="PORT", help="serve streamable HTTP on this port")
    p.add_argument("--host", default="127.0.0.1", help="the address for --http (default: 127.0.0.1)")
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    p.add_argument("--max-cost", type=non_negative_float, metavar="USD", help="refuse an analysis that could pass USD")
    _reading_flags(p, api=True)
    return parser


def _batch_api_flags(p: argparse.ArgumentParser) -> None:
    """`batch --batch-api` and its controls (docs/batch-api.md)."""
    p.add_argument(
        "--batch-api",
        action="store_true",
        help="run every request through the provider's Batch API (half price, results within 24 h); rerun the "
        "same command to go on after a stop",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="with --batch-api's output folder (SOURCE or --out): where each batch and trace stands; sends nothing",
    )
    p.add_argument(
        "--cancel", action="store_true", help="cancel the open batches of that output folder and delete their files"
    )
    p.add_argument(
        "--sync-retry",
        action="store_true",
        help="with --batch-api: send a line that failed or expired at once, live, instead of in the next batch",
    )
    p.add_argument(
        "--poll-every",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="with --batch-api: first look at open batches after S seconds, then twice as long each time, up to "
        "5 minutes (default: 10)",
    )
