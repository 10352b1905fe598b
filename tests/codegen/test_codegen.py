"""Generated code compiles under tsc --strict and mypy --strict; mistakes do not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from posthog import Posthog

from eventplan.cli import cli
from tests.conftest import OPENCHAT, ROOT, require_tool
from tests.servers import TOKEN, RunningServer

GOOD_TS = """
import posthog from "posthog-js";
import { PostHog } from "posthog-node";
import { OpenchatAnalytics, fromPosthogJs, fromPosthogNode, registerSuperProperties } from "./analytics";

registerSuperProperties(posthog, { app: "openchat-web", ui_theme: "dark", has_openrouter_key: false });
const web = new OpenchatAnalytics(fromPosthogJs(posthog));
web.chatCreated({ chat_id: "c1", source: "sidebar_button", storage_backend: "postgres", title_length: 3 });
web.openrouterKeyPromptShown({ reason: "missing" });
web.pageview({ referrer_url: "direct", referrer_domain: "direct", entry_path: "/" });
const server = new OpenchatAnalytics(
  fromPosthogNode(new PostHog("phc_x"), "user-1", { app: "openchat-server", environment: "production" }),
);
server.chatMessageStream({ chat_id: "c", model_id: "m", status: "completed", duration_ms: 5 });
"""

BROKEN_TS = {
    "wrong enum value": ('source: "sidebar_button"', 'source: "menu"', "menu"),
    "missing required property": ('{ chat_id: "c1", ', "{ ", "chat_id"),
    "misspelt event": ("web.chatCreated(", "web.chatCreatd(", "chatCreatd"),
}


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Inside the repository so that `posthog-js` and `posthog-node` resolve from node_modules.
    folder = ROOT / "build" / f"codegen-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def tsc(folder: Path) -> subprocess.CompletedProcess[str]:
    require_tool("node", "nodejs")
    return subprocess.run(
        [
            str(ROOT / "node_modules" / ".bin" / "tsc"),
            "--strict",
            "--noEmit",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--skipLibCheck",
            "--isolatedModules",
            "--verbatimModuleSyntax",
            str(folder / "use.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def generate(language: str, out: Path) -> None:
    result = CliRunner().invoke(cli, ["codegen", language, str(OPENCHAT), "-o", str(out)])
    assert result.exit_code == 0, result.output


def test_typescript_compiles_and_rejects_mistakes(workdir: Path) -> None:
    generate("typescript", workdir / "analytics.ts")
    compiles_and_rejects(workdir, GOOD_TS, BROKEN_TS)


def compiles_and_rejects(
    workdir: Path, good_use: str, broken: dict[str, tuple[str, str, str]]
) -> None:
    """`good_use` compiles against the generated code; each mistake (the right text
    replaced by the wrong one) does not, and tsc's message names it."""
    (workdir / "use.ts").write_text(good_use)
    good = tsc(workdir)
    assert good.returncode == 0, good.stdout
    for name, (right, wrong, named) in broken.items():
        (workdir / "use.ts").write_text(good_use.replace(right, wrong, 1))
        bad = tsc(workdir)
        assert bad.returncode != 0, name
        assert named in bad.stdout, (name, bad.stdout)


GOOD_PY = """
from posthog import Posthog

from analytics import chat_message_stream, chat_rate_limited

client = Posthog("phc_x", host="http://127.0.0.1:1")
chat_message_stream(client, "user-1", {"chat_id": "c", "model_id": "m", "status": "error",
                                       "duration_ms": 5}, super_properties={"app": "openchat-server"})
chat_rate_limited(client, "user-1", {"chat_id": "c", "limit": 20, "window_ms": 60000})
"""


def mypy(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "use.py", "analytics.py"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
    )


def test_python_passes_mypy_strict_and_a_wrong_enum_fails(workdir: Path) -> None:
    generate("python", workdir / "analytics.py")
    (workdir / "use.py").write_text(GOOD_PY)
    good = mypy(workdir)
    assert good.returncode == 0, good.stdout
    (workdir / "use.py").write_text(GOOD_PY.replace('"status": "error"', '"status": "failed"'))
    bad = mypy(workdir)
    assert bad.returncode != 0 and "failed" in bad.stdout
    (workdir / "use.py").write_text(GOOD_PY.replace('"chat_id": "c", "limit"', '"limit"'))
    missing = mypy(workdir)
    assert missing.returncode != 0 and "chat_id" in missing.stdout


# Plan text that ends a comment, a docstring or a line wherever the generator puts it.
AWKWARD_PLAN = r"""
plan: awkward
version: 1.0.0
naming:
  legacy_events: [import]
events:
  cart.item_added:
    description: "Ends a comment */ const pwned = 1; /* then \"\"\" a docstring's end \\\nx = 1"
    surfaces: [web, server]
    properties:
      source:
        type: string
        description: "first line\nSECOND = 2 then */"
        enum: ["it's", "say \"hi\"", "back\\slash", "*/", "new\nline"]
  import:
    description: "a Python keyword as an event name"
    surfaces: [server]
    properties: {}
"""


def test_plan_text_that_ends_comments_or_lines_still_compiles(workdir: Path) -> None:
    plan = workdir / "awkward.yaml"
    plan.write_text(AWKWARD_PLAN)
    for language, out in (("typescript", "analytics.ts"), ("python", "analytics.py")):
        result = CliRunner().invoke(cli, ["codegen", language, str(plan), "-o", str(workdir / out)])
        assert result.exit_code == 0, result.output
    (workdir / "use.ts").write_text(
        'import { AwkwardAnalytics } from "./analytics";\n'
        "const a = new AwkwardAnalytics(() => {});\n"
        'a.cartItemAdded({ source: "*/" });\n'
    )
    compiled = tsc(workdir)
    assert compiled.returncode == 0, compiled.stdout
    (workdir / "use.py").write_text(
        "from analytics import cart_item_added, import_\n"
        "from posthog import Posthog\n"
        'client = Posthog("phc_x", host="http://127.0.0.1:1")\n'
        'cart_item_added(client, "u", {"source": "*/"})\n'
        'import_(client, "u", {})\n'
    )
    checked = mypy(workdir)
    assert checked.returncode == 0, checked.stdout


def test_codegen_is_deterministic_and_names_the_plan_version(tmp_path: Path) -> None:
    for language, suffix in (("typescript", "ts"), ("python", "py")):
        generate(language, tmp_path / f"a.{suffix}")
        generate(language, tmp_path / f"b.{suffix}")
        first = (tmp_path / f"a.{suffix}").read_bytes()
        assert first == (tmp_path / f"b.{suffix}").read_bytes()
        assert b"plan `openchat` version 1.0.0" in first.splitlines()[0]


def test_generated_python_sends_through_posthog_python(
    server: RunningServer, tmp_path: Path
) -> None:
    generate("python", tmp_path / "analytics_gen.py")
    sys.path.insert(0, str(tmp_path))
    try:
        import analytics_gen  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    person = f"codegen-{uuid.uuid4()}"
    client = Posthog(TOKEN, host=server.url, sync_mode=True)
    analytics_gen.workspace_fallback_storage_used(
        client,
        person,
        {"operation": "streamUpsert", "fallback_size": 2},
        super_properties={"app": "openchat-server", "environment": "production"},
    )
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[verdict]] = server.sql(f"SELECT verdict FROM events WHERE distinct_id = '{person}'")
    assert verdict == "valid"


SURFACE_TS = """
import posthog from "posthog-js";
import { PostHog } from "posthog-node";
import { OpenchatWebAnalytics, fromPosthogJs } from "./web";
import { OpenchatServerAnalytics, fromPosthogNode } from "./server";

const web = new OpenchatWebAnalytics(fromPosthogJs(posthog));
web.chatCreated({ chat_id: "c1", source: "sidebar_button", storage_backend: "postgres" });
const server = new OpenchatServerAnalytics(
  fromPosthogNode(new PostHog("phc_x"), "user-1", { app: "openchat-server", environment: "production" }),
);
server.chatMessageStream({ chat_id: "c", model_id: "m", status: "completed", duration_ms: 5, ip_hash: "ab12", origin: "openchat.example" });
"""

BROKEN_SURFACE_TS = {
    "a server-only event from browser code": (
        "web.chatCreated(",
        'web.chatMessageStream({ chat_id: "c", model_id: "m", status: "completed", duration_ms: 5 });\nweb.chatCreated(',
        "chatMessageStream",
    ),
    "a misspelt environment for the server sender": (
        'environment: "production"',
        'environment: "prodution"',
        "prodution",
    ),
    "a per-request property of the wrong type": (
        'ip_hash: "ab12"',
        "ip_hash: 42",
        "Type 'number' is not assignable to type 'string'",
    ),
}


def test_one_module_per_surface_types_the_server_properties(workdir: Path) -> None:
    for surface in ("web", "server"):
        result = CliRunner().invoke(
            cli,
            [
                "codegen",
                "typescript",
                str(OPENCHAT),
                "-o",
                str(workdir / f"{surface}.ts"),
                "--surface",
                surface,
            ],
        )
        assert result.exit_code == 0, result.output
    compiles_and_rejects(workdir, SURFACE_TS, BROKEN_SURFACE_TS)


CHECK_TS = """
import { OpenchatAnalytics, checkedSender } from "./analytics";

const sent: string[] = [];
const heard: string[] = [];
const analytics = new OpenchatAnalytics(
  checkedSender((event) => sent.push(event), (event, problems) => heard.push(`${event}: ${problems.map((p) => p.message).join("; ")}`)),
);
analytics.chatRateLimited({ chat_id: "c", limit: 20, window_ms: 60000 });
// A payload the types allow but the plan refuses at run time (cast from untyped data).
analytics.chatRateLimited(JSON.parse('{"chat_id": "c", "limit": 2.5, "window_ms": 60000}'));
const strict = new OpenchatAnalytics(checkedSender(() => undefined));
let thrown = "";
try {
  strict.chatCreated(JSON.parse('{"chat_id": "c", "source": "menu", "storage_backend": "postgres"}'));
} catch (error) {
  thrown = String(error);
}
console.log(JSON.stringify({ sent, heard, thrown }));
"""


def test_the_development_check_holds_each_payload_to_the_plan_at_run_time(workdir: Path) -> None:
    generate("typescript", workdir / "analytics.ts")
    (workdir / "use.ts").write_text(CHECK_TS)
    built = subprocess.run(
        [
            str(ROOT / "node_modules" / ".bin" / "tsc"),
            "--strict",
            "--target",
            "es2022",
            "--module",
            "commonjs",
            "--outDir",
            str(workdir / "out"),
            str(workdir / "use.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout
    node = require_tool("node", "nodejs")
    ran = subprocess.run(
        [node, str(workdir / "out" / "use.js")], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["sent"] == ["chat.rate_limited", "chat.rate_limited"]
    assert report["heard"] == ["chat.rate_limited: limit: expected integer, got 2.5"]
    assert (
        'chat.created breaks the plan: source: "menu" is not one of sidebar_button'
        in (report["thrown"])
    )
