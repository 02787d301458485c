"""Run the benchmarks, each in its own Python process.

    python -m bench                  every module in bench/ that defines main()
    python -m bench store [ARGS]     just bench/store_bench.py, ARGS passed to it
    python -m bench --list           the benchmarks there are

A separate process per benchmark keeps one's imports, caches and memory from skewing the
figures of the next. Output streams through as each one prints it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Imports the module and calls its main() with the remaining arguments as sys.argv.
RUNNER = (
    "import importlib, sys\n"
    "name = sys.argv[1]\n"
    "sys.argv = ['bench/' + name + '.py', *sys.argv[2:]]\n"
    "result = importlib.import_module('bench.' + name).main()\n"
    "sys.exit(result if isinstance(result, int) else 0)\n"
)


def discover(folder: Path = HERE) -> list[str]:
    """Modules in ``folder`` with a top-level ``def main``, found without importing them."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            found.append(path.stem)  # let the run report what is wrong with it
            continue
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            found.append(path.stem)
    return found


def resolve(name: str, modules: list[str]) -> str | None:
    """``store`` -> ``store_bench``; an exact name or a unique prefix also works."""
    for candidate in (name, f"{name}_bench"):
        if candidate in modules:
            return candidate
    matches = [m for m in modules if m.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def run(module: str, args: list[str]) -> tuple[int, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    print(f"=== bench.{module} {' '.join(args)}".rstrip(), flush=True)
    started = time.perf_counter()
    code = subprocess.run([sys.executable, "-c", RUNNER, module, *args], cwd=ROOT, env=env,
                          check=False).returncode
    elapsed = time.perf_counter() - started
    print(f"--- bench.{module}: {'ok' if code == 0 else f'exit status {code}'} "
          f"in {elapsed:.0f} s\n", flush=True)
    return code, elapsed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    modules = discover()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv and argv[0] == "--list":
        print("\n".join(modules))
        return 0
    if argv:
        module = resolve(argv[0], modules)
        if module is None:
            print(f"no benchmark called {argv[0]!r}; there are: {', '.join(modules)}",
                  file=sys.stderr)
            return 2
        return run(module, argv[1:])[0]
    results = {module: run(module, []) for module in modules}
    print("=== summary")
    for module, (code, elapsed) in results.items():
        print(f"   {module:24} {'ok' if code == 0 else f'FAILED ({code})':12} {elapsed:6.0f} s")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the child got the same Ctrl-C and has stopped
        sys.exit(130)
