#!/usr/bin/env python3
"""The demo federation: three country nodes on localhost, peered, with synthetic records.

Run through `scripts/demo`. Each node has its own data directory, records,
custody registry and keys; 25 serials are deliberately recorded in two
countries (FRA and DEU), so a lookup from ITA finds both, and a lookup from
FRA finds DEU's. One Beretta's supply chain is split between the custody
registries (`node.trace.synthetic.supply_chain`): made in ITA and exported to
DEU, where a dealer sold it to its last legal possessor; a trace of it started
on FRA crosses the three countries. The demo starts one and shows its verified
chain, and prints the command that starts another. It then runs a federation
statistics round from FRA (`records_by_type_status`, ε 0.5, aggregators DEU and
ITA, k 3) and prints its released result and the console page that shows it; a
re-run in the same month shows that round again instead of spending more of each
node's privacy budget (ε 1.0 a month). Ctrl-C stops all three.
Environment: DEMO_DIR (.demo), DEMO_RECORDS (5000 per country), DEMO_CUSTODY
(2000 custody events per country), DEMO_TRACE (1: start a trace; 0: do not),
DEMO_ROUND (1: run a statistics round; 0: do not).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from node.records.model import CSV_COLUMNS
from node.records.synthetic import generate_rows, write_csv
from node.trace.model import CUSTODY_COLUMNS
from node.trace.synthetic import generate_rows as generate_custody
from node.trace.synthetic import supply_chain

COUNTRIES = {"FRA": (8080, 8443), "DEU": (8081, 8444), "ITA": (8082, 8445)}
SHARED_IN = ("FRA", "DEU")
PASSWORD = "demo-admin-password"
CLI = str(Path(sys.executable).parent / "iarms-node")
#: The firearm a demo trace follows: recovered in FRA, made in ITA, sold on in DEU.
TRACED_SERIAL, TRACED_ROUTE = "C48215Z", ("ITA", "DEU")
TRACE_NEW = (
    *("trace", "new", "--serial", TRACED_SERIAL, "--make", "Beretta", "--model", "92FS"),
    *("--type", "pistol", "--calibre", "9x19mm", "--country-of-manufacture", "ITA"),
    *("--recovered-on", "2026-03-14", "--recovered-at", "Marseille", "--crime", "homicide"),
    *("--case-ref", "FR-DEMO-0001", "--agency", "Police judiciaire"),
)
#: The demo's statistics round, requested by FRA: every node contributes.
ROUND_QUERY, ROUND_EPSILON = "records_by_type_status", 0.5
ROUND_START = (
    *("stats", "round", "start", "--query", ROUND_QUERY, "--epsilon", str(ROUND_EPSILON)),
    *("--aggregators", "DEU,ITA", "--min-contributors", "3", "--deadline", "10m"),
)


def cli(*args: str) -> str:
    """Run iarms-node; stop the demo with its message if it fails."""
    result = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    if result.returncode not in (0, 3):
        sys.exit(f"demo: iarms-node {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def create(base: Path, country: str, records: int, custody: int, seed: int) -> None:
    """Initialise one node and import its synthetic records and custody events."""
    data = base / country
    console, federation = COUNTRIES[country]
    print(f"== creating {country} in {data}", flush=True)
    cli(
        "init",
        "--country",
        country,
        "--data-dir",
        str(data),
        "--console-listen",
        f"127.0.0.1:{console}",
        "--federation-listen",
        f"127.0.0.1:{federation}",
        "--admin-password-file",
        str(base / "admin-password.txt"),
    )
    records_csv = base / f"{country}-records.csv"
    write_csv(records_csv, records, seed=seed, progress=False)
    cli("records", "import", str(records_csv), "--no-progress", "--data-dir", str(data))
    if country in SHARED_IN:  # the same firearms, reported in two countries
        shared = base / f"{country}-shared.csv"
        with shared.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, CSV_COLUMNS)
            writer.writeheader()
            for row in generate_rows(25, seed=4242):
                writer.writerow(
                    row
                    | {
                        "external_id": f"{country}-{row['external_id']}",
                        "reporting_agency": f"{country} national police",
                    }
                )
        cli("records", "import", str(shared), "--no-progress", "--data-dir", str(data))
    custody_csv = base / f"{country}-custody.csv"
    with custody_csv.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, CUSTODY_COLUMNS)
        writer.writeheader()
        writer.writerows(generate_custody(custody, country, seed=seed))
        chain = supply_chain(TRACED_SERIAL, "Beretta", "92FS", TRACED_ROUTE)
        writer.writerows(chain.get(country, []))
    cli("custody", "import", str(custody_csv), "--no-progress", "--data-dir", str(data))
    cli(
        "users",
        "add",
        "officer.demo",
        "--role",
        "officer",
        "--password-file",
        str(base / "admin-password.txt"),
        "--data-dir",
        str(data),
    )


def wait_healthy(country: str) -> None:
    """Wait until the node answers on its federation port."""
    url = f"http://127.0.0.1:{COUNTRIES[country][1]}/federation/v1/health"
    for _ in range(150):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"demo: {country} did not start (is port {COUNTRIES[country][1]} taken?)")


def peer_all(base: Path) -> None:
    """Make every node a peer of the others, allowing lookups and traces with their details
    (the policy is set again on a demo made before, so that it follows the demo's)."""
    identity = {
        c: json.loads(cli("identity", "--json", "--data-dir", str(base / c))) for c in COUNTRIES
    }
    for me in COUNTRIES:
        peers = cli("peers", "list", "--json", "--data-dir", str(base / me))
        known = {json.loads(line)["country"] for line in peers.splitlines()}
        for other in COUNTRIES:
            if other == me:
                continue
            if other not in known:
                cli(
                    "peers",
                    "add",
                    identity[other]["public_url"],
                    "--country",
                    other,
                    "--fingerprint",
                    identity[other]["fingerprint"],
                    "--data-dir",
                    str(base / me),
                )
            cli(
                "peers",
                "policy",
                other,
                "--allow",
                "lookups,hit-details,traces,trace-details,statistics",
                "--data-dir",
                str(base / me),
            )


def demo_trace(base: Path) -> None:
    """Start a trace on FRA as an officer would, wait for its chain and show it."""
    fra = ("--data-dir", str(base / "FRA"))
    started = json.loads(cli(*TRACE_NEW, "--json", *fra))
    trace = started["trace_id"]
    print(f"  A trace of Beretta {TRACED_SERIAL} started on FRA ({trace}):", flush=True)
    for _ in range(300):
        if json.loads(cli("trace", "show", trace, "--json", *fra))["status"] == "answered":
            break
        time.sleep(0.1)
    print(cli("trace", "show", trace, *fra), flush=True)


def _this_months_round(fra: tuple[str, str]) -> str | None:
    """The demo's round released (or still collecting) this month, if any: a re-run shows
    it again rather than spend more of every node's budget."""
    month = time.strftime("%Y-%m", time.gmtime())
    for line in cli("stats", "round", "list", "--json", *fra).splitlines():
        listed = json.loads(line)
        if (
            listed["requester"] == "FRA"
            and listed["query"] == ROUND_QUERY
            and listed["created_at"].startswith(month)
            and listed["status"] != "failed"
        ):
            return str(listed["round_id"])
    return None


def demo_round(base: Path) -> None:
    """Run the demo's statistics round from FRA (or show this month's), wait for its
    release and print it, with the console page that shows it."""
    fra = ("--data-dir", str(base / "FRA"))
    round_id = _this_months_round(fra)
    if round_id is None:
        left = min(
            json.loads(cli("stats", "budget", "--json", "--data-dir", str(base / c)))["remaining"]
            for c in COUNTRIES
        )
        if left < ROUND_EPSILON:
            print(f"  No statistics round: a node has only ε {left:g} left this month.\n")
            return
        round_id = json.loads(cli(*ROUND_START, "--json", *fra))["round_id"]
        print(f"  A statistics round started on FRA ({round_id}):", flush=True)
    else:
        print(f"  This month's statistics round ({round_id}), already run:", flush=True)
    for _ in range(600):  # the running nodes carry it (they look at least every 5 s)
        if json.loads(cli("stats", "round", "show", round_id, "--json", *fra))["status"] != (
            "collecting"
        ):
            break
        time.sleep(0.1)
    print(cli("stats", "round", "show", round_id, *fra), flush=True)
    console = COUNTRIES["FRA"][0]
    print(f"  On FRA's console: http://127.0.0.1:{console}/statistics/rounds/{round_id}")
    print(f"  Budget: http://127.0.0.1:{console}/statistics/budget\n", flush=True)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def main() -> None:
    base = Path(os.environ.get("DEMO_DIR", ".demo")).resolve()
    records = int(os.environ.get("DEMO_RECORDS", "5000"))
    custody = int(os.environ.get("DEMO_CUSTODY", "2000"))
    base.mkdir(parents=True, exist_ok=True)
    password = base / "admin-password.txt"
    if not password.exists():
        password.write_text(PASSWORD + "\n", encoding="utf-8")
        password.chmod(0o600)
    for seed, country in enumerate(COUNTRIES, start=1):
        if not (base / country / "config.toml").exists():
            create(base, country, records, custody, seed * 1000)
    nodes = [
        subprocess.Popen([CLI, "run", "--data-dir", str(base / c)], stdout=subprocess.DEVNULL)
        for c in COUNTRIES
    ]
    try:
        for country in COUNTRIES:
            wait_healthy(country)
        peer_all(base)
        print("\n  iarms-node demo federation (Ctrl-C stops it)\n")
        for country, (console, _federation) in COUNTRIES.items():
            print(
                f"  {country}  console http://127.0.0.1:{console}/   "
                f"login admin / {PASSWORD}  (or officer.demo)"
            )
        print("\n  Try: Lookup on ITA's console with a serial from FRA's shared records,")
        print(f"  e.g. {next(generate_rows(1, seed=4242))['serial_number']}\n", flush=True)
        if os.environ.get("DEMO_TRACE", "1") != "0":
            demo_trace(base)
        if os.environ.get("DEMO_ROUND", "1") != "0":
            demo_round(base)
        print("  Trace the Beretta from FRA (ITA made it, DEU sold it on):")
        print(f"  .venv/bin/iarms-node {shlex.join(TRACE_NEW)} --data-dir {base / 'FRA'}")
        print(f"  then: .venv/bin/iarms-node trace show ID --data-dir {base / 'FRA'}\n", flush=True)
        # Blocked here, not before the nodes start: a blocked mask is inherited.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        signal.sigwait(STOP_SIGNALS)
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)


if __name__ == "__main__":
    main()
