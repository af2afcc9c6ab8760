"""The README is tested: every command and option is documented, the thresholds table matches the
code, the report keys are described, and CI runs the README's own commands.

``python tests/test_docs.py`` regenerates the README's generated blocks: the thresholds table and
the captured quickstart session (it runs the quickstart, ~30 s).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from diagnosis_fixtures import cli_runner, make_report
from etafinder.cli import app
from etafinder.gate import ExitCode
from etafinder.phases import THRESHOLDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
QUICKSTART = "etafinder probe examples/mlp_digits.py"


def readme() -> str:
    """The README's text."""
    return README.read_text(encoding="utf-8")


def thresholds_table() -> str:
    """The README's thresholds table, generated from ``phases.THRESHOLDS``."""
    rows = ["| name | value | meaning |", "| --- | --- | --- |"]
    for name, t in THRESHOLDS.items():
        desc = t["description"].replace("|", "\\|")
        rows.append(f"| `{name}` | {t['value']!r} | {desc} |")
    return "\n".join(rows)


def block(text: str, name: str) -> str:
    """The content between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    m = re.search(rf"<!-- {name}:begin -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
    assert m, f"README has no {name} block"
    return m.group(1)


def _set_block(text: str, name: str, content: str) -> str:
    return re.sub(
        rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)",
        lambda m: m.group(1) + content + m.group(2),
        text,
        flags=re.S,
    )


def test_every_command_and_option_documented():
    """Each command and each of its options appears in the README, and has --help text."""
    text = readme()
    cli = get_command(app)
    for name, cmd in cli.commands.items():
        assert f"etafinder {name}" in text, name
        assert cmd.help, name
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in text, f"{name} {opt} is not in the README"


def test_thresholds_table_matches_code():
    """The thresholds table is what the code uses (to regenerate: python tests/test_docs.py)."""
    assert block(readme(), "thresholds") == thresholds_table()


def test_report_keys_documented():
    """Every top-level key and every probe key of a report is described in the README."""
    text = readme()
    report = make_report()
    for key in report:
        assert f"`{key}`" in text, f"report key {key} is not in the README"
    for key in report["probes"][0]:
        assert f"`{key}`" in text, f"probe key {key} is not in the README"
    assert "etafinder/report/v1" in text


def test_exit_codes_documented():
    """The exit-code table lists every ExitCode."""
    text = readme()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", text, re.M), code


def test_paper_cited():
    """The paper behind the phases is cited."""
    assert "arXiv:2003.02218" in readme() and "Lewkowycz" in readme()


def test_quickstart_is_two_commands_and_ci_runs_them():
    """The quickstart block is `pip install …` then the example; .ci/run runs that example and the
    README's test command."""
    text = readme()
    quick = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, re.S)
    assert quick
    commands = quick.group(1).strip().splitlines()
    assert len(commands) == 2 and commands[0].startswith("pip install -e .")
    assert commands[1] == QUICKSTART
    ci = CI.read_text()
    assert QUICKSTART in ci
    test_cmd = re.search(r"## Development.*?```bash\n.*?\n(python -m pytest[^\n]*)\n", text, re.S)
    assert test_cmd and test_cmd.group(1) in ci


def test_captured_session_is_real():
    """The captured session is the quickstart's output: its three parts, a recommendation."""
    session = block(readme(), "session")
    assert session.startswith(f"```text\n$ {QUICKSTART}\n")
    for part in ("Curvature", "Probes", "Recommendation", "catapult", "η_crit"):
        assert part in session
    assert not any(line != line.rstrip() for line in session.splitlines())


def test_check_session_is_real(monkeypatch):
    """The `etafinder check --from-report` lines in the README print what the README says."""

    monkeypatch.chdir(ROOT)
    pairs = re.findall(r"^\$ (etafinder check --from-report \S+ --lr \S+)\n(.+)$", readme(), re.M)
    assert len(pairs) >= 2
    for command, expected in pairs:
        result = cli_runner().invoke(app, command.split()[1:])
        assert result.stdout.rstrip("\n") == expected, command
        assert result.exit_code == (0 if expected.startswith("PASS") else 1)


def _capture() -> str:
    out = subprocess.run(
        [Path(sys.executable).with_name("etafinder"), *QUICKSTART.split()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": str(Path(sys.executable).parent), "NO_COLOR": "1", "HOME": str(Path.home())},
    )
    body = "\n".join(line.rstrip() for line in out.stdout.rstrip().splitlines())
    return f"```text\n$ {QUICKSTART}\n{body}\n```"


if __name__ == "__main__":
    text = _set_block(readme(), "thresholds", thresholds_table())
    if "--no-session" not in sys.argv:
        text = _set_block(text, "session", _capture())
    README.write_text(text, encoding="utf-8")
    print("README.md updated")
    pytest.main([__file__, "-q"])
