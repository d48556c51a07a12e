#!/usr/bin/env python3
"""Benchmark: the command line as whole processes, against the start of a bare interpreter.

Sets up two nodes with `iarms-node init` in a temporary directory, FRA and
DEU, each holding N generated records (`iarms-node records import`, not
timed); makes them peers of each other (`peers add`, with the fingerprint
from `identity --json`, while both run); then, with DEU running in the
background (`iarms-node run`) and FRA not running, times each command as a
whole process, one untimed run and then R timed runs each:

- `iarms-node --help`
- `iarms-node records search --serial S --data-dir FRA` (a serial FRA holds)
- `iarms-node peers list --data-dir FRA`
- `iarms-node lookup --serial S --case-ref R --data-dir FRA`: DEU over loopback, a miss
  (DEU's index is downloaded by the untimed run, as by any earlier lookup)

and, as the floor of them all, `python -c pass` with the same interpreter.
Prints one JSON line: each wall-clock median in seconds (`*_s`), minus the
floor's (`*_minus_floor_s`) and over it (`*_over_floor`), and each median CPU
time (`*_cpu_s`, user + system: steadier than wall-clock on a busy machine).
The background node is stopped with its process group whatever happens.

    .venv/bin/python scripts/bench/cli.py [--records 100000] [--runs 10]

Targets: `records search --serial` and `peers list` under 0.5 s, `lookup
--serial` against one peer under 1 s, as whole processes.
"""

from __future__ import annotations

import argparse
import compileall
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for the one harness: tests/

from common import positive, say
from floors import run_s
from procs import CLI, start_node, stop_node, wait_quiet, wait_serving

from node.records.synthetic import generate_rows, write_csv
from tests.harness import free_port

MISSING = "NOTHELD-0000001"
PASSWORD = "benchmark password"
#: A command line, and the check its standard output must pass.
Command = tuple[list[str | Path], Callable[[str], bool]]


def cli(*args: str | Path) -> str:
    """Run `iarms-node ARGS`; its standard output (raises on a failure)."""
    done = subprocess.run(
        [CLI, *map(str, args)], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"iarms-node {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stdout


def _init(base: Path, country: str, n: int, seed: int) -> Path:
    """A new node holding `n` generated records; its data directory."""
    data, password, csv_path = base / country, base / "password", base / f"{country}.csv"
    password.write_text(PASSWORD)
    cli(
        *("init", "--country", country, "--data-dir", data),
        *("--console-listen", f"127.0.0.1:{free_port()}"),
        *("--federation-listen", f"127.0.0.1:{free_port()}"),
        *("--admin-password-file", password),
    )
    write_csv(csv_path, n, seed=seed, progress=False)
    cli("records", "import", csv_path, "--data-dir", data, "--no-progress")
    csv_path.unlink()
    return data


def _peer(us: Path, them: Path) -> None:
    """Add `them` as a peer of `us` (`them` must be running)."""
    info = json.loads(cli("identity", "--json", "--data-dir", them))
    cli(
        *("peers", "add", info["public_url"], "--country", info["country"]),
        *("--fingerprint", info["fingerprint"], "--data-dir", us),
    )


def _running(data: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = start_node(data, log)
    try:
        wait_serving(proc, data, log)
    except BaseException:
        stop_node(proc)
        raise
    return proc


def _figures(commands: dict[str, Command], runs: int) -> dict[str, float]:
    """Each command's medians, the first command's being the floor of the others."""
    figures: dict[str, float] = {}
    floor_s = 0.0
    for name, (argv, check) in commands.items():
        say(f"timing {name}, {runs} runs")
        wall, cpu = run_s(argv, runs, check)
        figures[f"{name}_s"] = round(wall, 4)
        figures[f"{name}_cpu_s"] = round(cpu, 4)
        if not floor_s:
            floor_s = wall
            continue
        figures[f"{name}_minus_floor_s"] = round(wall - floor_s, 4)
        figures[f"{name}_over_floor"] = round(wall / floor_s, 2)
    return figures


def bench(n: int, runs: int, base: Path) -> dict[str, float | int]:
    """Set up FRA and DEU in `base`, time the commands, stop DEU."""
    say(f"two nodes with {n:,} generated records each")
    fra, deu = _init(base, "FRA", n, seed=7), _init(base, "DEU", n, seed=8)
    held = next(generate_rows(1, seed=7))["serial_number"]
    procs = []
    try:
        procs = [_running(fra, base / "FRA.log"), _running(deu, base / "DEU.log")]
        _peer(fra, deu)
        _peer(deu, fra)
        stop_node(procs.pop(0))  # FRA: its commands run while it does not
        wait_quiet(procs[0].pid)  # DEU has built its index
        commands: dict[str, Command] = {
            "python_pass": ([sys.executable, "-c", "pass"], lambda _out: True),
            "help": ([CLI, "--help"], lambda out: "lookup" in out),
            "records_search": (
                [CLI, "records", "search", "--serial", held, "--data-dir", fra],
                lambda out: held in out,
            ),
            "peers_list": ([CLI, "peers", "list", "--data-dir", fra], lambda out: "DEU" in out),
            "lookup": (
                [CLI, "lookup", "--serial", MISSING, "--case-ref", "BENCH-1", "--data-dir", fra],
                lambda out: out.startswith("DEU") and "no hit" in out,
            ),
        }
        figures = _figures(commands, runs)
    finally:
        for proc in procs:
            stop_node(proc)
    return {"records": n, "runs": runs} | figures


def main() -> None:
    """Parse the options, run the benchmark in a temporary directory, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=positive, default=100_000)
    parser.add_argument("--runs", type=positive, default=10)
    args = parser.parse_args()
    # Timed as an installed copy runs: with the project's bytecode written (an editable
    # install under PYTHONDONTWRITEBYTECODE would otherwise compile every module each run).
    root = Path(__file__).resolve().parents[2]
    compileall.compile_dir(root / "node", quiet=1)
    compileall.compile_dir(root / "admin_ui", quiet=1)
    with tempfile.TemporaryDirectory(prefix="iarms-bench-") as tmp:
        print(json.dumps(bench(args.records, args.runs, Path(tmp))))


if __name__ == "__main__":
    main()
