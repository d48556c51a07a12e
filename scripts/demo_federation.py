#!/usr/bin/env python3
"""The demo federation: three country nodes on localhost, peered, with synthetic records.

Run through `scripts/demo`. Each node has its own data directory, records and
keys; 25 serials are deliberately recorded in two countries (FRA and DEU), so a
lookup from ITA finds both, and a lookup from FRA finds DEU's. Ctrl-C stops
all three. Environment: DEMO_DIR (.demo), DEMO_RECORDS (5000 per country).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from node.records.model import CSV_COLUMNS
from node.records.synthetic import generate_rows, write_csv

COUNTRIES = {"FRA": (8080, 8443), "DEU": (8081, 8444), "ITA": (8082, 8445)}
SHARED_IN = ("FRA", "DEU")
PASSWORD = "demo-admin-password"
CLI = str(Path(sys.executable).parent / "iarms-node")


def cli(*args: str) -> str:
    """Run iarms-node; stop the demo with its message if it fails."""
    result = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    if result.returncode not in (0, 3):
        sys.exit(f"demo: iarms-node {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def create(base: Path, country: str, records: int, seed: int) -> None:
    """Initialise one node and import its synthetic records."""
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
    """Make every node a peer of the others, allowing lookups and hit details."""
    identity = {
        c: json.loads(cli("identity", "--json", "--data-dir", str(base / c))) for c in COUNTRIES
    }
    for me in COUNTRIES:
        peers = cli("peers", "list", "--json", "--data-dir", str(base / me))
        known = {json.loads(line)["country"] for line in peers.splitlines()}
        for other in COUNTRIES:
            if other == me or other in known:
                continue
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
                "lookups,hit-details",
                "--data-dir",
                str(base / me),
            )


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def main() -> None:
    base = Path(os.environ.get("DEMO_DIR", ".demo")).resolve()
    records = int(os.environ.get("DEMO_RECORDS", "5000"))
    base.mkdir(parents=True, exist_ok=True)
    password = base / "admin-password.txt"
    if not password.exists():
        password.write_text(PASSWORD + "\n", encoding="utf-8")
        password.chmod(0o600)
    for seed, country in enumerate(COUNTRIES, start=1):
        if not (base / country / "config.toml").exists():
            create(base, country, records, seed * 1000)
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
