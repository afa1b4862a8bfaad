"""The suite's own limits: a subprocess's timeout must fire before pytest-timeout kills the test that runs it.

Otherwise the subprocess timeout is dead code and a hung script ends as a bare pytest-timeout stack dump instead of
a `TimeoutExpired` that names the command.
"""

import ast
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MARGIN_S = 120  # left for the test's own work around its subprocesses (setup, tiny training runs, loading)


def _default_timeout() -> float:
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    return float(config["tool"]["pytest"]["ini_options"]["timeout"])


def _marked_timeout(function: ast.FunctionDef) -> float | None:
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.timeout":
            return float(ast.literal_eval(decorator.args[0]))
    return None


def _subprocess_timeouts(function: ast.FunctionDef) -> list[float]:
    timeouts = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("subprocess."):
            timeouts += [float(ast.literal_eval(k.value)) for k in node.keywords if k.arg == "timeout"]
    return timeouts


def test_subprocess_timeouts_fit_inside_the_per_test_timeout():
    default = _default_timeout()
    checked, too_long = 0, []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            timeouts = _subprocess_timeouts(node)
            if not timeouts:
                continue
            checked += 1
            budget = _marked_timeout(node) or default
            if sum(timeouts) + MARGIN_S > budget:
                too_long.append(f"{path.name}::{node.name}: subprocesses {timeouts} s, test timeout {budget:g} s")
    assert checked >= 5  # the end-to-end tests were found
    assert not too_long, "\n".join(too_long)
