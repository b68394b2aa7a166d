"""Hostile input: every operation of the live OpenAPI document at the largest input it allows, and past it.

    python bench/hostile_input.py [--data ../shared/data/ml-latest-small | --model-dir DIR]
                                  [--before OLD.json] [--out bench/results/hostile_input]

Trains `bias` (`--solver als`, with the top-N ranker, as `python -m training train --model bias --solver als`
does) on ml-latest-small, serves it with uvicorn on 127.0.0.1 (the write key and admin token set, so protected
routes do their work), reads `/openapi.json` and sends, per operation:

- `at_max`: every array at its `maxItems` (genres cycled through the served model's genres, repeated in other
  spellings past them; ids distinct known ones), every string at its `maxLength`, integers at their maximum, and
  a body padded with JSON whitespace to just under MOVIEREC_MAX_BODY_BYTES;
- `over_max`, once per array: that array filled past its `maxItems` up to the body limit (a query array up to an
  8 KB query string), the rest as in `at_max`: the server must refuse it without doing the work;
- `old_worst_case`: `POST /recommend` with 20,000 x "Drama" in `genre` (180 KB), issue 23's reproduction.

Per request: the status, the wall time and the growth of the server's peak RSS (VmHWM of /proc/<pid>/status,
read before and after). A request passes with a status below 500 within `MAX_SECONDS` and a growth of at most
`MAX_RSS_GROWTH_MB`; an input array without `maxItems` or string without `maxLength` in the document is a
problem too. `tests/test_hostile_input.py` runs the same requests and fails on any problem. Writes `<out>.json`
and `<out>.md`; `--before` adds the figures of an earlier run (e.g. of the code before a fix) beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

BODY_LIMIT = 2_000_000  # MOVIEREC_MAX_BODY_BYTES's default
MAX_SECONDS = 2.0
MAX_RSS_GROWTH_MB = 100.0
# Query strings of the over-the-limit requests: well inside what the HTTP servers accept in a request line.
QUERY_BUDGET = 8_000
OLD_WORST_CASE_REPEATS = 20_000
KEY = "hostile-input-key"
# Operations whose path id must be one the served model does not know (else they answer 409 at once).
NEW_MOVIE_OPERATIONS = {"PUT /movies/{movie_id}"}
# Values that do the most work where "the maximum" would do less (an empty page, an empty list).
PREFERRED_INTEGERS = {"offset": 0, "min_ratings": 1}
# A string whose pattern "a" * maxLength would not match.
PREFERRED_STRINGS = {"cursor": "9" * 16 + "_" + "9" * 16}

Schema = dict[str, Any]


# ---- requests from the document ------------------------------------------------------------------------------


@dataclass
class HostileRequest:
    """One request to send, and what it is."""

    operation: str  # "POST /recommend"
    case: str  # at_max, over_max, old_worst_case
    what: str  # which input is at (or past) which bound
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    items: int | None = None  # how many items the over-the-limit array holds

    @property
    def name(self) -> str:
        return f"{self.operation} [{self.case}] {self.what}".rstrip()


@dataclass
class Catalogue:
    """Ids of the served model: path ids and body ids are known ones, so that every route does its work."""

    user_ids: list[int]
    movie_ids: list[int]

    def new_movie_id(self) -> int:
        return max(self.movie_ids) + 1_000_000


class _Generator:
    """JSON values from the document's schemas, each input at the largest size its schema allows."""

    def __init__(self, document: Schema, catalogue: Catalogue) -> None:
        self.components = document.get("components", {}).get("schemas", {})
        self.catalogue = catalogue
        self.counters: dict[str, int] = {}

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        branches = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
        if len(branches) == 1 and "type" not in schema:
            return self.resolve(branches[0])
        return schema

    def _next(self, ids: list[int], counter: str) -> int:
        position = self.counters.get(counter, 0)
        self.counters[counter] = position + 1
        return ids[position % len(ids)]

    def value(self, schema: Schema, name: str, *, fill: int | None = None) -> Any:
        """The largest value of `schema` for a field called `name`; `fill` (arrays): this many items instead."""
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "array":
            return self.array(schema, name, fill)
        if kind == "object" or "properties" in schema:
            return self.object(schema)
        if kind == "integer":
            if name == "movie_id":
                return self._next(self.catalogue.movie_ids, "movie_id")
            if name == "user_id":
                return self._next(self.catalogue.user_ids, "user_id")
            if name in PREFERRED_INTEGERS:
                return PREFERRED_INTEGERS[name]
            return schema.get("maximum", schema.get("minimum", schema.get("default", 1)))
        if kind == "number":
            return schema.get("maximum", schema.get("minimum", 1.0))
        if kind == "boolean":
            return False
        if kind == "string":
            return self.string(schema, name)
        return None

    def string(self, schema: Schema, name: str) -> str:
        length = schema.get("maxLength", 1_000)
        if name in PREFERRED_STRINGS:
            return PREFERRED_STRINGS[name][:length]
        if name == "q":  # many distinct short words: the word index's worst case
            words = " ".join(f"{chr(97 + i % 26)}{i}" for i in range(length))
            return words[:length].strip()
        return "a" * length

    def array(self, schema: Schema, name: str, fill: int | None) -> list[Any]:
        count = fill if fill is not None else schema.get("maxItems", 1_000)
        return [self.item(schema, name, i) for i in range(count)]

    def item(self, schema: Schema, name: str, position: int) -> Any:
        """Item `position` of the array `name`: enum values cycled (so past the enum's length they repeat, as
        a schema without `uniqueItems` allows), else the items' largest value (ids: the next known one)."""
        items = self.resolve(schema.get("items", {}))
        if "enum" in items:
            return items["enum"][position % len(items["enum"])]
        return self.value(items, name[:-1] if name.endswith("_ids") else name)

    def object(self, schema: Schema) -> dict[str, Any]:
        properties = dict(schema.get("properties", {}))
        # One form of a `oneOf` of required sets (PredictRequest): the one holding an array (the batch).
        forms = [f for f in schema.get("oneOf", ()) if "required" in f]
        if forms:
            chosen = next(
                (
                    f
                    for f in forms
                    if any(self.resolve(properties[p]).get("type") == "array" for p in f["required"])
                ),
                forms[0],
            )
            excluded = {
                p for branch in chosen.get("not", {}).get("anyOf", ()) for p in branch.get("required", ())
            }
            excluded |= set(chosen.get("not", {}).get("required", ()))
            properties = {k: v for k, v in properties.items() if k not in excluded}
        return {key: self.value(prop, key) for key, prop in properties.items()}


def unbounded_inputs(document: Schema) -> list[str]:
    """Every input of the document (parameter or request-body field, at any depth) that is an array without
    `maxItems` or a string without `maxLength` (an `enum` bounds a string too)."""
    generator = _Generator(document, Catalogue([1], [1]))
    found: list[str] = []

    def walk(schema: Schema, where: str, seen: frozenset[str]) -> None:
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                return
            seen = seen | {ref}
        schema = generator.resolve(schema)
        for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ()), *schema.get("allOf", ())):
            walk(branch, where, seen)
        kind = schema.get("type")
        if kind == "array":
            if "maxItems" not in schema:
                found.append(f"{where}: an array without maxItems")
            walk(schema.get("items", {}), f"{where}[]", seen)
        elif (
            kind == "string" and "maxLength" not in schema and "enum" not in schema and "const" not in schema
        ):
            found.append(f"{where}: a string without maxLength")
        for key, prop in schema.get("properties", {}).items():
            walk(prop, f"{where}.{key}", seen)

    for operation, item in _operations(document):
        for parameter in item.get("parameters", ()):
            walk(
                parameter.get("schema", {}), f"{operation} {parameter['in']} {parameter['name']}", frozenset()
            )
        body = _body_schema(item)
        if body is not None:
            walk(body, f"{operation} body", frozenset())
    return found


def _operations(document: Schema) -> Iterator[tuple[str, Schema]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch"}:
                yield f"{method.upper()} {path}", operation


def _body_schema(operation: Schema) -> Schema | None:
    content = operation.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema")


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _padded(raw: bytes, body_limit: int) -> bytes:
    """`raw` with JSON whitespace after it up to just under the body limit."""
    return raw + b" " * max(0, body_limit - 64 - len(raw))


def _filled(
    generator: _Generator, schema: Schema, name: str, budget: int, *, query: bool = False
) -> list[Any]:
    """The array `name` of `schema` with as many items as fit in `budget` bytes: of JSON, or with `query` of a
    query string (`name=item&` per item)."""
    items: list[Any] = []
    size = 2
    while True:
        item = generator.item(schema, name, len(items))
        size += len(name) + len(quote_plus(str(item))) + 2 if query else len(_encode(item)) + 1
        if size > budget:
            return items
        items.append(item)


def hostile_requests(
    document: Schema, catalogue: Catalogue, *, body_limit: int = BODY_LIMIT
) -> list[HostileRequest]:
    """The requests of the module docstring, for every operation of `document`."""
    requests: list[HostileRequest] = []
    for operation, item in _operations(document):
        method, template = operation.split(" ", 1)
        generator = _Generator(document, catalogue)
        path = template
        query: dict[str, Any] = {}
        query_schemas: dict[str, Schema] = {}
        for parameter in item.get("parameters", ()):
            name, schema = parameter["name"], parameter.get("schema", {})
            if parameter["in"] == "path":
                if name == "movie_id" and operation in NEW_MOVIE_OPERATIONS:
                    value: Any = catalogue.new_movie_id()
                else:
                    value = generator.value(schema, name)
                path = path.replace(f"{{{name}}}", str(value))
            elif parameter["in"] == "query":
                query[name] = generator.value(schema, name)
                query_schemas[name] = generator.resolve(schema)
        body_schema = _body_schema(item)
        body = None if body_schema is None else generator.value(body_schema, "body")

        def params(values: dict[str, Any]) -> list[tuple[str, str]]:
            pairs = []
            for name, value in values.items():
                for one in value if isinstance(value, list) else [value]:
                    pairs.append((name, str(one).lower() if isinstance(one, bool) else str(one)))
            return pairs

        at_max = None if body is None else _padded(_encode(body), body_limit)
        requests.append(HostileRequest(operation, "at_max", "", method, path, params(query), at_max))
        # Before the over-the-limit bodies: each request's growth of the peak is measured from the peak so far.
        if operation == "POST /recommend" and isinstance(body, dict):
            worst = {"ratings": body["ratings"][:1], "genre": ["Drama"] * OLD_WORST_CASE_REPEATS}
            requests.append(
                HostileRequest(
                    operation,
                    "old_worst_case",
                    f'body genre {OLD_WORST_CASE_REPEATS:,} x "Drama"',
                    method,
                    path,
                    [],
                    _encode(worst),
                    OLD_WORST_CASE_REPEATS,
                )
            )
        for name, schema in query_schemas.items():
            if schema.get("type") != "array":
                continue
            over = dict(query)
            over[name] = _filled(generator, schema, name, QUERY_BUDGET, query=True)
            requests.append(
                HostileRequest(
                    operation,
                    "over_max",
                    f"query {name}",
                    method,
                    path,
                    params(over),
                    at_max,
                    len(over[name]),
                )
            )
        if isinstance(body, dict) and body_schema is not None:
            properties = generator.resolve(body_schema).get("properties", {})
            for name, value in body.items():
                if not isinstance(value, list):
                    continue
                rest = len(_encode({**body, name: []}))
                filled = _filled(generator, generator.resolve(properties[name]), name, body_limit - 64 - rest)
                raw = _padded(_encode({**body, name: filled}), body_limit)
                requests.append(
                    HostileRequest(
                        operation, "over_max", f"body {name}", method, path, params(query), raw, len(filled)
                    )
                )
    return requests


# ---- sending and measuring -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the server did with one hostile request."""

    name: str
    operation: str
    case: str
    items: int | None
    body_bytes: int
    query_bytes: int
    status: int | None
    seconds: float
    rss_growth_mb: float
    detail: str

    def problem(self) -> str | None:
        """What this outcome broke of the bounds (status, time, memory), or None."""
        broken = []
        if self.status is None or self.status >= 500:
            broken.append(f"answered {self.status} ({self.detail})")
        if self.seconds > MAX_SECONDS:
            broken.append(f"took {self.seconds:.2f} s (limit {MAX_SECONDS} s)")
        if self.rss_growth_mb > MAX_RSS_GROWTH_MB:
            broken.append(f"peak RSS grew {self.rss_growth_mb:.0f} MB (limit {MAX_RSS_GROWTH_MB:.0f} MB)")
        return f"{self.name}: {'; '.join(broken)}" if broken else None


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def send_all(
    base: str, pid: int, requests: Sequence[HostileRequest], *, key: str = KEY, timeout: float = 120
) -> list[Outcome]:
    """Send each request in turn, measuring its status, wall time and the server's peak-RSS growth."""
    outcomes = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=timeout, headers=headers) as client:
        for request in requests:
            before = peak_rss_mb(pid)
            started = time.perf_counter()
            status: int | None
            try:
                response = client.request(
                    request.method, request.path, params=request.params, content=request.body
                )
                status = response.status_code
                detail = response.text[:300] if status >= 400 else ""
            except httpx.HTTPError as exc:
                status, detail = None, f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - started
            query = len(str(httpx.QueryParams(request.params)))
            outcomes.append(
                Outcome(
                    request.name,
                    request.operation,
                    request.case,
                    request.items,
                    len(request.body or b""),
                    query,
                    status,
                    seconds,
                    max(0.0, peak_rss_mb(pid) - before),
                    detail,
                )
            )
    return outcomes


def document_operations(document: Schema) -> set[str]:
    return {operation for operation, _ in _operations(document)}


# ---- the server ----------------------------------------------------------------------------------------------


def train_model(data: Path, workdir: Path) -> Path:
    """`python -m training train --model bias --solver als` on `data`; returns the model root (with `latest`)."""
    root = workdir / "models"
    command = [PYTHON, "-m", "training", "train", "--data", str(data), "--model", "bias", "--solver", "als"]
    subprocess.run(
        [*command, "--output-dir", str(root), "--quiet"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(model_root: Path, workdir: Path, *, key: str = KEY, **settings: str) -> Iterator[tuple[str, int]]:
    """uvicorn on 127.0.0.1 serving a copy of `model_root` with ratings in a SQLite file beside it, `key` as both
    the API key and the admin token; yields (base URL, server pid)."""
    copy = workdir / "served"
    shutil.copytree(model_root, copy, dirs_exist_ok=True, symlinks=True)
    env = {
        **os.environ,
        "MOVIEREC_DEVICE": "cpu",
        "MOVIEREC_MODEL_DIR": str(copy / "latest"),
        "MOVIEREC_ADMIN_TOKEN": key,
        "MOVIEREC_API_KEY": key,
        "MOVIEREC_DATABASE_URL": f"sqlite:///{copy / 'ratings.db'}",
        "MOVIEREC_MODEL_POLL_SECONDS": "0",
        **settings,
    }
    port = _free_port()
    command = [PYTHON, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not become ready in 60 s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def catalogue_of(model_dir: Path) -> Catalogue:
    from movierec.artifacts import load_bundle

    bundle = load_bundle(model_dir)
    return Catalogue(
        [int(u) for u in bundle.user_ids.ids[:10_000]], [int(m) for m in bundle.movie_ids.ids[:20_000]]
    )


def run(model_root: Path, workdir: Path) -> dict[str, Any]:
    """Serve `model_root`, send every hostile request, and return the figures."""
    catalogue = catalogue_of(model_root / "latest")
    with serving(model_root, workdir) as (base, pid):
        document = httpx.get(f"{base}/openapi.json", timeout=30).json()
        requests = hostile_requests(document, catalogue)
        # Warm-up: the lazily built parts (the first list, the first body) are not hostile input's doing.
        httpx.get(f"{base}/recommend/{catalogue.user_ids[0]}", timeout=30)
        start_mb = peak_rss_mb(pid)
        outcomes = send_all(base, pid, requests)
        end_mb = peak_rss_mb(pid)
    problems = unbounded_inputs(document) + [p for o in outcomes if (p := o.problem()) is not None]
    missing = document_operations(document) - {o.operation for o in outcomes}
    problems += [f"{operation}: not exercised" for operation in sorted(missing)]
    return {
        "operations": len(document_operations(document)),
        "peak_rss_mb": {"before_requests": round(start_mb, 1), "after_requests": round(end_mb, 1)},
        "outcomes": [asdict(o) for o in outcomes],
        "problems": problems,
    }


# ---- the report ----------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
    return ""


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        )
    return f"{os.cpu_count()} CPUs ({cpu or platform.processor()}), Python {platform.python_version()}"


NOTES = [
    "- *array items*: how many items the array past its bound holds (`over_max`: as many as fit in the body limit, "
    "or in an 8 KB query string). `at_max` rows hold every array at its `maxItems`; an array without one (in the "
    "*before* run: the genre lists) gets 1,000 items, and the document's missing bound is itself a problem.",
    "- Arrays whose bound is a setting (`instances`, `ratings`, `movie_ids`) are parsed before they are counted: "
    "past the bound, a body at the limit costs 0.1-0.45 s and at most ~55 MB once (the first large body grows "
    "the heap; later ones reuse it), bounded by MOVIEREC_MAX_BODY_BYTES, then 422 `limit_exceeded`.",
    "- Growth is of the peak (VmHWM): a request that needs no more memory than an earlier one shows 0, so the "
    "old worst case is sent before the larger over-the-limit bodies of its operation.",
]


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    before = {o["name"]: o for o in result.get("before", {}).get("outcomes", ())}
    lines = [
        "# Hostile input: every operation at its largest input, and past it",
        "",
        f"`python bench/hostile_input.py` on {result['machine']}, {result['date']}, commit {result['commit']}.",
        f"Model: {result['model']}. Body limit {result['body_limit']:,} bytes (MOVIEREC_MAX_BODY_BYTES); a request "
        f"passes with a status below 500 within {MAX_SECONDS} s and at most {MAX_RSS_GROWTH_MB:.0f} MB of growth "
        "of the server's peak RSS (VmHWM). See the script's docstring for the requests.",
        "",
        f"{result['operations']} operations, {len(result['outcomes'])} requests; server peak RSS "
        f"{result['peak_rss_mb']['before_requests']} MB before the requests, "
        f"{result['peak_rss_mb']['after_requests']} MB after all of them.",
        "",
    ]
    if result["problems"]:
        lines += ["**Problems:**", "", *[f"- {p}" for p in result["problems"]], ""]
    else:
        lines += ["No problems: every input has a bound in the document, and every request passed.", ""]
    if result.get("before", {}).get("problems"):
        lines += [
            f"Problems of the *before* run ({result['before']['commit']}, {result['before']['date']}):",
            "",
            *[f"- {p}" for p in result["before"]["problems"]],
            "",
        ]
    header = "| request | array items | body bytes | query bytes | status | ms | peak RSS growth MB |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if before:
        header += f" before, {result['before']['commit']}: status, ms, MB |"
        rule += "---|"
    lines += [header, rule]
    for o in result["outcomes"]:
        items = "" if o["items"] is None else f"{o['items']:,}"
        row = (
            f"| {o['name'].replace('|', '/')} | {items} | {o['body_bytes']:,} | {o['query_bytes']:,} | {o['status']} | "
            f"{o['seconds'] * 1000:,.1f} | {o['rss_growth_mb']:.1f} |"
        )
        if before:
            old = before.get(o["name"])
            row += (
                f" {old['status']}, {old['seconds'] * 1000:,.0f}, {max(0.0, old['rss_growth_mb']):.0f} |"
                if old
                else " (not sent) |"
            )
        lines.append(row)
    if before:
        missing = [name for name in before if name not in {o["name"] for o in result["outcomes"]}]
        if missing:
            lines += ["", "Requests of the earlier run that this document no longer produces:", ""]
            for name in missing:
                old = before[name]
                lines.append(
                    f"- {name}: {old['status']}, {old['seconds'] * 1000:,.0f} ms, {old['rss_growth_mb']:.0f} MB"
                )
    lines += ["", *NOTES]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ml-latest-small")
    parser.add_argument("--model-dir", type=Path, default=None, help="a model root (with `latest`) to serve")
    parser.add_argument("--before", type=Path, default=None, help="results JSON of an earlier run to compare")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/hostile_input")
    parser.add_argument(
        "--commit", default=None, help="the commit served, for a checkout without git metadata"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hostile-input-") as tmp:
        workdir = Path(tmp)
        if args.model_dir is not None:
            model_root = args.model_dir
            model = f"the artifact at {args.model_dir.name}"
        else:
            model_root = train_model(args.data, workdir)
            model = f"`bias --solver als` with the top-N ranker, trained on {args.data.name}"
        manifest = json.loads((model_root / "latest" / "manifest.json").read_text())
        result = run(model_root, workdir)
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    result = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": args.commit or (_git("rev-parse", "--short", "HEAD") or "unknown") + dirty,
        "model": f"{model}, {manifest['n_movies']:,} movies, {manifest['n_users']:,} users",
        "body_limit": BODY_LIMIT,
        **result,
    }
    if args.before is not None:
        result["before"] = json.loads(args.before.read_text())
        result["before"].pop("before", None)
    write_report(result, args.out)
    for problem in result["problems"]:
        print(problem)
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
