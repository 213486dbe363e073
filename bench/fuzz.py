"""Coverage-guided fuzzing of every parser an attacker can reach (issue 17), with atheris
(libFuzzer for Python: `pip install -e '.[bench]'`, which `make bench` does).

The targets and their contracts are `tests/fuzz_targets.py` (the suite runs the same ones
for a few thousand inputs each with hypothesis): the IMAP parser and session, the MIME
parser and APPEND/FETCH through the store, SMTP commands and DATA, the DNS handler, the
HTTP request path (Autodiscover POX and SOAP, EWS, web mail's forms, the JSON API), PROXY
protocol headers, certificate imports and the shell's parser and binding.

    .venv/bin/python bench/fuzz.py --list
    nice -n 10 .venv/bin/python bench/fuzz.py --target imap-parser --runs 1000000 --out OUT
    nice -n 10 .venv/bin/python bench/fuzz.py --all --jobs 2 --out OUT
    .venv/bin/python bench/fuzz.py --replay OUT/crashes/imap-session-crash-...

Each target runs in a process of its own (libFuzzer ends its process), seeded with the
tests' own inputs (`OUT/seeds/NAME`), its grammar's words as a libFuzzer dictionary, new
inputs kept in `OUT/corpus/NAME`. A crash is any exception out of the target (its
documented clear errors are caught there), an input that runs over `--timeout` seconds
(a hang), or a process over `--rss-limit-mb` (unbounded memory); libFuzzer saves the
input as `OUT/crashes/NAME-crash-<sha1>` (or `-timeout-`, `-oom-`) and stops the target.
Printed per target: inputs run, time, inputs/s, coverage after the seeds and at the end
(libFuzzer's edges, "cov"), the corpus, and each crash with the end of its traceback.
The exit status is 1 when a target crashed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/dns.py and bench/http.py would shadow the packages of those names
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import ast  # noqa: E402
import concurrent.futures  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Python modules instrumented for coverage besides casarray: the third-party parsers the
# targets hand bytes to
INSTRUMENTED = ["casarray", "aiosmtpd", "dns", "defusedxml", "email", "starlette", "multipart"]


def catalogue() -> dict[str, Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module("tests.fuzz_targets")
    targets: dict[str, Any] = module.TARGETS
    return targets


# -- one target in this process (libFuzzer's) ---------------------------------------------


def _dictionary(tokens: tuple[bytes, ...]) -> str:
    def escaped(token: bytes) -> str:
        return "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in token
        )

    return "".join(f'"{escaped(t)}"\n' for t in tokens if t)


def _while_true_functions(tree: ast.AST) -> set[str]:
    """The qualified names of the functions with a `while True:` loop of their own."""
    found: set[str] = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and any(
                    isinstance(n, ast.While)
                    and isinstance(n.test, ast.Constant)
                    and n.test.value is True
                    for n in ast.walk(child)
                ):
                    found.add(name)
                visit(child, name + ("." if isinstance(child, ast.ClassDef) else ".<locals>."))
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def uninstrument_while_true(packages: list[str]) -> list[str]:
    """Gives back their plain bytecode to the functions of `packages` with a `while True:`
    loop. atheris 2.3 instruments such a loop wrongly on CPython 3.11 (a value of the
    loop's comparison is lost: `_question_end` of the DNS handler compared an int with
    None, the shell's `parse_binary` called a method of the wrong object), so that the
    instrumented code fails where the real code doesn't. Their callees keep coverage."""
    restored = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] not in packages or not path or not path.endswith(".py"):
            continue
        try:
            source = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        wanted = _while_true_functions(ast.parse(source))
        if not wanted:
            continue
        plain: dict[str, types.CodeType] = {}
        todo = [compile(source, path, "exec")]
        while todo:
            code = todo.pop()
            if code.co_qualname in wanted:
                plain[code.co_qualname] = code
            todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for qualname, code in plain.items():
            owner: Any = module
            for part in qualname.split(".")[:-1]:
                owner = getattr(owner, part, None)
            function = getattr(owner, qualname.rsplit(".", 1)[-1], None) if owner else None
            function = getattr(function, "__func__", function)  # static/class methods
            if isinstance(function, types.FunctionType):
                function.__code__ = code
                restored.append(f"{name}:{qualname}")
    return restored


def run_child(args: argparse.Namespace) -> None:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    import casarray

    target = catalogue()[args.child]
    out = Path(args.out)
    seeds = out / "seeds" / target.name
    corpus = out / "corpus" / target.name
    crashes = out / "crashes"
    for folder in (seeds, corpus, crashes):
        folder.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0],
        str(corpus),
        str(seeds),
        f"-runs={args.runs}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={target.max_len}",
        f"-artifact_prefix={crashes}/{target.name}-",
        "-print_final_stats=1",
        "-reload=0",
    ]
    if args.seconds:
        libfuzzer.append(f"-max_total_time={args.seconds}")
    if target.tokens:
        dictionary = out / f"{target.name}.dict"
        dictionary.write_text(_dictionary(target.tokens))
        libfuzzer.append(f"-dict={dictionary}")
    # every module of the target is imported here to be instrumented: casarray's all
    # (a target imports some on first use), the others as the target and seeds need them
    with atheris.instrument_imports(include=INSTRUMENTED):
        for module in pkgutil.walk_packages(casarray.__path__, "casarray."):
            skip = module.name.startswith(
                ("casarray.lab", "casarray.cli", "casarray.directory.mig")
            )
            if not skip and not module.name.endswith("__main__"):
                with contextlib.suppress(ImportError):
                    importlib.import_module(module.name)
        one = target.make()
        restored = set(uninstrument_while_true(INSTRUMENTED))
        for i, seed in enumerate(target.seeds()):
            (seeds / f"seed-{i:04d}").write_bytes(seed[: target.max_len])
            if i < 50:  # what the target imports on first use (libFuzzer runs them all)
                with contextlib.suppress(Exception):
                    one(seed[: target.max_len])
    restored |= set(uninstrument_while_true(INSTRUMENTED))
    print(f"INFO: {len(restored)} functions with a `while True:` loop left uninstrumented")

    def test_one_input(data: bytes) -> None:
        # The input and its traceback are saved here, before libFuzzer's own handling
        # (which an asyncio or SQLite worker thread of the target can stall until the
        # -timeout alarm kills the process without saving anything).
        try:
            one(data)
        except Exception:
            digest = hashlib.sha1(data).hexdigest()
            saved = crashes / f"{target.name}-crash-{digest}"
            saved.write_bytes(data)
            text = traceback.format_exc()
            saved.with_name(saved.name + ".txt").write_text(text)
            print(f"\n === Uncaught Python exception: ===\n{text}", flush=True)
            print(f"Test unit written to {saved}", flush=True)
            os._exit(1)

    atheris.Setup(libfuzzer, test_one_input)
    atheris.Fuzz()


# -- the driver: targets in processes of their own, their figures ---------------------------


@dataclass
class Figures:
    name: str
    runs: int = 0
    seconds: float = 0.0
    start_cov: int | None = None
    end_cov: int | None = None
    corpus: int | None = None
    crashes: list[str] = field(default_factory=list)
    status: int = 0
    log: Path | None = None

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


_STAT = re.compile(r"^#(\d+)\s+(INITED|DONE|NEW|REDUCE|pulse)\s+cov: (\d+).*?corp: (\d+)", re.M)


def read_log(figures: Figures, text: str) -> None:
    for runs, kind, cov, corp in _STAT.findall(text):
        if kind == "INITED" and figures.start_cov is None:
            figures.start_cov = int(cov)
        figures.end_cov = int(cov)
        figures.corpus = int(corp)
        figures.runs = max(figures.runs, int(runs))
    executed = re.search(r"stat::number_of_executed_units: (\d+)", text)
    if executed:
        figures.runs = int(executed.group(1))


def run_target(name: str, args: argparse.Namespace) -> Figures:
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log = out / "logs" / f"{name}.log"
    crashes = out / "crashes"
    before = set(crashes.glob(f"{name}-*")) if crashes.exists() else set()
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    command += ["--out", str(out), "--runs", str(args.runs), "--timeout", str(args.timeout)]
    command += ["--rss-limit-mb", str(args.rss_limit_mb)]
    if args.seconds:
        command += ["--seconds", str(args.seconds)]
    started = time.monotonic()
    with log.open("w") as sink:
        status = subprocess.call(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    figures = Figures(name, seconds=time.monotonic() - started, status=status, log=log)
    read_log(figures, log.read_text(errors="replace"))
    after = set(crashes.glob(f"{name}-*")) if crashes.exists() else set()
    figures.crashes = sorted(str(p) for p in after - before if p.suffix != ".txt")
    return figures


def _traceback_tail(log: Path) -> str:
    text = log.read_text(errors="replace")
    at = text.find("=== Uncaught Python exception: ===")
    if at < 0:
        for marker in ("ALARM: working on the last Unit", "out-of-memory", "==ERROR"):
            at = text.find(marker)
            if at >= 0:
                return text[at : at + 300]
        return text[-600:]
    lines = text[at:].splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("==")), len(lines))
    return "\n".join(lines[: min(end, 40)][-12:])


def report(results: list[Figures]) -> None:
    print(
        f"{'target':<14}{'inputs':>11}{'time (s)':>10}{'inputs/s':>10}"
        f"{'cov seeds':>11}{'cov end':>9}{'new':>6}{'corpus':>8}  crashes"
    )
    for f in results:
        new = (f.end_cov - f.start_cov) if f.end_cov is not None and f.start_cov else 0
        print(
            f"{f.name:<14}{f.runs:>11,}{f.seconds:>10.0f}{f.rate:>10.0f}"
            f"{f.start_cov or 0:>11}{f.end_cov or 0:>9}{new:>6}{f.corpus or 0:>8}  "
            f"{len(f.crashes) or ('-' if f.status == 0 else f'exit {f.status}')}"
        )
    for f in results:
        if f.crashes or f.status != 0:
            print(f"\n{f.name}: {', '.join(f.crashes) or 'no input saved'} (log {f.log})")
            if f.log is not None:
                print(_traceback_tail(f.log))
            for crash in f.crashes:
                print(f"without atheris: {confirm(crash)}")


def confirm(path: str) -> str:
    """The saved input run again without atheris, in a process of its own: whether it
    still fails (and how long it took), or was an artifact of the instrumented run
    (a slow moment under load for a timeout)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--replay", path]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "still running after 120 s: a hang"
    seconds = time.monotonic() - started
    last = (done.stdout.strip().splitlines() or ["(nothing printed)"])[-1]
    verdict = "reproduced" if done.returncode else "not reproduced"
    return f"{verdict} ({seconds:.1f} s with the set-up): {last}"


def replay(paths: list[str]) -> int:
    """Runs saved inputs through their targets (named by the file's prefix) without
    atheris; prints each outcome."""
    targets = catalogue()
    made: dict[str, Any] = {}
    failed = 0
    for path in paths:
        base = Path(path).name
        name = next((n for n in sorted(targets, key=len, reverse=True) if base.startswith(n)), "")
        if not name:
            print(f"{path}: no target's name starts the file's name")
            failed += 1
            continue
        if name not in made:
            made[name] = targets[name].make()
        try:
            made[name](Path(path).read_bytes())
        except Exception as exc:
            failed += 1
            print(f"{path}: {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"{path}: {name}: ok")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", default=[], help="a target (repeatable)")
    parser.add_argument("--all", action="store_true", help="every target, one after another")
    parser.add_argument("--list", action="store_true", help="name and describe the targets")
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=0, help="stop a target after this")
    parser.add_argument("--timeout", type=int, default=1, help="seconds an input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory per target")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once")
    parser.add_argument("--out", default="fuzz-out", help="seeds, corpus, crashes and logs")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs again")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    if args.replay:
        sys.exit(replay(args.replay))
    targets = catalogue()
    if args.list:
        for name, target in targets.items():
            print(f"{name:<14}{target.doc}")
        return
    names = list(targets) if args.all else args.target
    unknown = [n for n in names if n not in targets]
    if unknown or not names:
        parser.error(
            f"unknown target(s) {', '.join(unknown)}; the targets: {', '.join(targets)}"
            if unknown
            else "name a --target, or --all"
        )
    try:
        import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        sys.exit("bench/fuzz.py needs atheris: .venv/bin/pip install -e '.[bench]'")
    os.makedirs(args.out, exist_ok=True)
    results: list[Figures] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_target, name, args) for name in names]
        for future in futures:
            figures = future.result()
            results.append(figures)
            print(
                f"{figures.name}: {figures.runs:,} inputs in {figures.seconds:.0f} s "
                f"({figures.rate:.0f}/s), {len(figures.crashes)} crash(es)",
                flush=True,
            )
    print()
    report(results)
    sys.exit(1 if any(f.crashes or f.status for f in results) else 0)


if __name__ == "__main__":
    main()
