"""The argument parser of ``opslib``: every command, its arguments, and the options they share.

An option several commands take (``--yes``, ``--json``, ``--verbose``, ``--break-lock``,
``--evidence-root``) is defined once here as a parent parser and copied into each command with argparse's
``parents=``; where a command's own help text says what the option means for it, that text is passed in.
A command lists its options as parents in the order ``--help`` shows them (argparse puts parents before
the arguments added afterwards).

Building the parser imports nothing heavy: no emulator, no pandas, no cryptography (``opslib --help``
and every command start fast); the handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__

# The rehearsal scenario names (`opslib rehearse serve --scenario`), kept here so that the parser does not
# import the emulator; tests/test_layout.py checks they are opslib.rehearsal.scenarios.SCENARIOS.
REHEARSAL_SCENARIOS = (
    "b64-locked",
    "cross-to-older-root",
    "default",
    "expired-cross",
    "exportpfx-probe-denies",
    "exportpfx-probe-lies",
    "hashfile-probe-denies",
    "hashfile-probe-lies",
    "iis10",
    "iis10-dualstack",
    "iis10-dualstack-foreign",
    "iis10-no-request",
    "iis10-sni",
    "iis6-inherited",
    "iis6-ja",
    "iis6-ja-no-request",
    "iis7",
    "iis75-ja",
    "iis75-ja-no-request",
    "iis85",
    "key-not-exportable",
    "modern-chain",
    "no-g5",
    "no-pending-request",
    "pfx-locked",
)

ASK_BEFORE_SWAP = "do not ask before the production swap (step 2)"
ASK_BEFORE_SITE_CHANGE = "do not ask before changing the production site"
ASK_BEFORE_REVERSIBLE = "with --reversible: do not ask"


def option(*names: str, **settings: Any) -> argparse.ArgumentParser:
    """A parent parser holding one argument, for ``parents=``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*names, **settings)
    return parent


# --- the shared options ---------------------------------------------------------------------------------


def yes(help: str) -> argparse.ArgumentParser:
    """``--yes``: do not ask before a change (``help`` says which)."""
    return option("--yes", action="store_true", help=help)


def as_json(help: str | None = None) -> argparse.ArgumentParser:
    """``--json``: machine-readable output."""
    return option("--json", action="store_true", help=help)


def evidence_root(*, default: str | None, help: str | None = None) -> argparse.ArgumentParser:
    """``--evidence-root``: where run folders go."""
    return option("--evidence-root", default=default, help=help)


def verbose(help: str = "show papermill's cell progress too") -> argparse.ArgumentParser:
    """``--verbose``: more lines while a command runs (``help`` says which)."""
    return option("--verbose", action="store_true", help=help)


VERBOSE = verbose()
BREAK_LOCK = option(
    "--break-lock", action="store_true", help="break the server's renewal lock another run holds (recorded)"
)
FORCE_OLDER = option(
    "--force-older",
    action="store_true",
    help="go on although production serves another certificate than RUN recorded (a newer run's; recorded)",
)


# --- the commands -----------------------------------------------------------------------------------------


def build() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="opslib",
        description="Renew SSL server certificates on Microsoft IIS over WinRM, with evidence.",
    )
    p.add_argument("--version", action="version", version=f"opslib {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_runbook_commands(sub)
    _add_inspect(sub)
    _add_evidence(sub)
    _add_rehearse(sub)
    _add_lab(sub)
    _add_fleet(sub)
    _add_calendar(sub)
    return p


def _add_runbook_commands(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a renewal from a parameters file",
        parents=[
            evidence_root(default=None, help="where run folders go (default: ./evidence)"),
            option(
                "--dry-run", action="store_true", help="read-only checks; record the plan, change nothing"
            ),
            yes(ASK_BEFORE_SWAP),
            option("--steps", default=None, help=argparse.SUPPRESS),
            VERBOSE,
            BREAK_LOCK,
            option(
                "--run-dir-file",
                metavar="FILE",
                help="write the run folder's path to FILE as soon as it exists (for scripts: fleet, Ansible)",
            ),
        ],
    )
    run.add_argument("params", help="parameters file (YAML)")

    req = sub.add_parser(
        "request",
        help="create the pending request (key and CSR) on the server, before the CA is asked",
        parents=[
            evidence_root(default=None, help="where run folders go (default: ./evidence)"),
            option(
                "--dry-run", action="store_true", help="read-only: show the INF and the plan, change nothing"
            ),
            yes("do not ask (the request changes no site; accepted for symmetry with run)"),
            option(
                "--new-request",
                action="store_true",
                help="make a new request although one for the same names is pending (recorded)",
            ),
            option("--key-size", type=int, choices=[2048, 3072], default=2048, help="RSA key size (2048)"),
            VERBOSE,
            BREAK_LOCK,
        ],
    )
    req.add_argument("params", help="the renewal's parameters file (YAML)")

    res = sub.add_parser(
        "resume",
        help="continue a failed run from its failed step, in a new run folder chained to it",
        parents=[
            yes(ASK_BEFORE_SWAP),
            option(
                "--params",
                metavar="FILE",
                help="corrected values (verify.*, backup.*, winrm.*, forbidden_roots, warn_days); others are refused",
            ),
            VERBOSE,
            BREAK_LOCK,
            FORCE_OLDER,
        ],
    )
    res.add_argument("run_dir")

    rb = sub.add_parser(
        "rollback",
        help="put the previous certificate back (a new run chained to RUN); --roots: the roots too",
        parents=[
            option(
                "--roots",
                action="store_true",
                help="also re-enable the roots RUN's step 0 disabled (from its .reg backups)",
            ),
            yes(ASK_BEFORE_SITE_CHANGE),
            VERBOSE,
            FORCE_OLDER,
            option(
                "--force-expired",
                action="store_true",
                help="put back a certificate that has expired (recorded); renewing is the way forward",
            ),
        ],
    )
    rb.add_argument("run_dir", metavar="RUN")


def _add_inspect(sub: Any) -> None:
    ins = sub.add_parser(
        "inspect",
        help="inspect certificates: files, mails, PFX, CSR, or host:port",
        parents=[as_json("machine-readable output (schema in docs/inspect-json.md)")],
    )
    ins.add_argument("sources", nargs="+", metavar="SOURCE")
    ins.add_argument("--password-env", metavar="VAR", help="environment variable holding the PFX password")
    ins.add_argument("--servername", metavar="NAME", help="SNI name to send to host:port sources")
    ins.add_argument("--hostname", metavar="NAME", action="append", help="host name the leaf must cover")
    ins.add_argument("--warn-days", type=int, default=30, metavar="N", help="expires_soon threshold (30)")
    ins.add_argument(
        "--forbidden-root", action="append", metavar="SHA1", help="extra forbidden root thumbprint"
    )


def _add_evidence(sub: Any) -> None:
    ev = sub.add_parser("evidence", help="list, show and verify renewal evidence")
    evsub = ev.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--root", default="evidence")
    filters.add_argument("--host")
    filters.add_argument("--site")
    filters.add_argument("--since", help="YYYY-MM-DD (UTC)")
    filters.add_argument("--status")
    evsub.add_parser("list", help="one line per run", parents=[filters, as_json()])
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--hmac-key", metavar="REF", help="secret reference of the HMAC key (env:NAME …)")
    evsub.add_parser(
        "show", help="one run: summary, steps, facts, renders", parents=[option("run_dir"), key, as_json()]
    )
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("run_dir", nargs="?")
    which.add_argument("--root")
    evsub.add_parser(
        "verify", help="recompute hashes and the chain across runs", parents=[which, key, as_json()]
    )
    evr = evsub.add_parser(
        "report", help="an auditor's report of one run: one self-contained HTML file", parents=[key]
    )
    evr.add_argument("run_dir")
    evr.add_argument(
        "--lang", default="ja+en", choices=["ja", "en", "ja+en", "en+ja"], help="ja, en or both (ja+en)"
    )
    evr.add_argument(
        "--out",
        metavar="FILE",
        help="where to write it (default: RUN_DIR/regenerated/report-<UTC>-<lang>.html, not part of the sealed record)",
    )


def _add_rehearse(sub: Any) -> None:
    reh = sub.add_parser("rehearse", help="the rehearsal host: an emulated Windows/IIS server")
    rehsub = reh.add_subparsers(dest="rehearse_command", required=True, metavar="ACTION")
    srv = rehsub.add_parser("serve", help="serve an emulated host over WS-Management until interrupted")
    srv.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    srv.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    srv.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        metavar="N",
        help="delay every WS-Management request by N ms, as a slow link would (0)",
    )
    srv.add_argument("--https", action="store_true", help="HTTPS with a generated certificate")
    srv.add_argument("--user", default="Administrator", help="Basic-auth user name (Administrator)")
    srv.add_argument(
        "--password-env",
        default="OPSLIB_REHEARSAL_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (unset: a random one, written to a 0600 file)",
    )
    srv.add_argument("--locale", choices=["en", "ja"], default=None, help="language of tool messages")
    srv.add_argument(
        "--codepage", type=int, choices=[437, 932, 65001], default=None, help="console code page (ja: 932)"
    )
    srv.add_argument(
        "--scenario",
        default="default",
        choices=REHEARSAL_SCENARIOS,
        metavar="NAME",
        help="one of: " + ", ".join(REHEARSAL_SCENARIOS) + " (docs/rehearsal.md)",
    )
    srv.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="before|after:PROGRAM[#N]:drop|timeout|fault500|fail (PROGRAM: certutil, certreq, reg, cscript, * …, "
        "or a named point: swap, export, swap.add, … — opslib rehearse faults lists them)",
    )
    srv.add_argument(
        "--state-file", metavar="F", help="JSON picture of the host, rewritten after every command"
    )
    srv.add_argument("--params-out", metavar="F", help="write a parameters file for this host")
    srv.add_argument("--workdir", metavar="DIR", help="where the CA file and mailed certificate are written")
    srv.add_argument(
        "--auth",
        choices=["basic", "ntlm", "negotiate"],
        default=None,
        help="ntlm/negotiate (WinRM as shipped: NTLM, encrypted HTTP; the default for Server 2008 R2+ "
        "scenarios) | basic (Basic over HTTP: the default for the Server 2003 scenarios)",
    )
    srv.add_argument(
        "--allow-basic", action="store_true", default=None, help="with --auth ntlm: also accept Basic"
    )
    srv.add_argument(
        "--allow-unencrypted",
        action="store_true",
        default=None,
        help="with --auth ntlm: accept unencrypted SOAP over HTTP (WinRM AllowUnencrypted=true)",
    )
    srv.add_argument(
        "--tls",
        choices=["modern", "tls1.0", "tls1.0-no-aes"],
        default="modern",
        help="HTTPS as Server 2003 serves it: tls1.0 (with KB948963 AES), tls1.0-no-aes (RC4/3DES only)",
    )
    iss = rehsub.add_parser(
        "issue",
        help="the rehearsal CA: issue a certificate for a CSR and write the CA's notification mail",
    )
    iss.add_argument("csr", metavar="CSR", help="the request (request.csr of an opslib request run)")
    iss.add_argument("--out", required=True, metavar="MAIL", help="where the CA's mail is written")
    iss.add_argument(
        "--chain",
        choices=["default", "modern-chain", "cross-to-older-root"],
        default=None,
        help="the CA's chain shape (default: the rehearsal host's, from --workdir)",
    )
    iss.add_argument(
        "--lang", choices=["ja", "en"], default="ja", help="the mail's language (ja, as the CA sends it)"
    )
    iss.add_argument(
        "--workdir",
        metavar="DIR",
        help="the rehearsal host's --workdir (its CA signs; without it a fresh CA the host does not trust)",
    )
    _add_rehearse_fleet(rehsub)
    faults = rehsub.add_parser(
        "faults",
        help="the named fault points (--fault before:swap:fail …) and their positions in a clean renewal",
    )
    faults.add_argument(
        "--scenario",
        default="iis6-ja",
        choices=REHEARSAL_SCENARIOS,
        metavar="NAME",
        help="the rehearsal host whose clean renewal is listed (default: the demo's iis6-ja)",
    )
    demo = rehsub.add_parser(
        "demo",
        help="a full renewal against a fresh rehearsal host",
        parents=[evidence_root(default="evidence")],
    )
    demo.add_argument("--backup-dir", default="backups", help="where the PFX backup goes (0700)")


def _add_rehearse_fleet(rehsub: Any) -> None:
    fl = rehsub.add_parser(
        "fleet",
        help="serve N emulated servers, each on its own 127.0.x.y address, and write their Ansible inventory",
    )
    fl.add_argument("--hosts", type=int, required=True, metavar="N", help="how many servers (1–1000)")
    fl.add_argument(
        "--scenarios",
        default="",
        metavar="A,B,…",
        help="scenarios given out in turn (default: iis6-ja,iis75-ja,iis10,iis10-sni)",
    )
    fl.add_argument(
        "--inventory-out", metavar="FILE", help="the YAML inventory (default: WORKDIR/inventory.yml)"
    )
    fl.add_argument(
        "--workdir", metavar="DIR", help="the hosts' folders, fleet.json (default: a new temp folder)"
    )
    fl.add_argument(
        "--latency-ms", type=int, default=0, metavar="N", help="delay every WS-Management request by N ms (0)"
    )
    fl.add_argument("--user", default="Administrator", help="the account on every host (Administrator)")
    fl.add_argument(
        "--password-env",
        default="OPSLIB_REHEARSAL_PASSWORD",
        metavar="VAR",
        help="environment variable holding the hosts' password (unset: a random one, written to a 0600 file)",
    )
    fl.add_argument(
        "--pfx-password-env",
        default="OPSLIB_PFX_PASSWORD",
        metavar="VAR",
        help="the variable the inventory names for the PFX password (env:VAR)",
    )


def fleet_inventory() -> argparse.ArgumentParser:
    """INVENTORY, ``--limit``, ``--base-params``, ``--vault-password-file``: the fleet commands' inventory."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("inventory", metavar="INVENTORY", help="an Ansible inventory (YAML, INI or a folder)")
    parent.add_argument(
        "--limit", metavar="PATTERN", help="Ansible's host pattern (web01, iis6, 'all:!web03')"
    )
    parent.add_argument(
        "--base-params", metavar="FILE", help="base parameters of hosts without opslib_base_params"
    )
    parent.add_argument(
        "--vault-password-file",
        metavar="FILE",
        help="decrypts vault-encrypted variables (else ANSIBLE_VAULT_PASSWORD_FILE)",
    )
    return parent


def _add_fleet(sub: Any) -> None:
    # `opslib fleet plan` (helper fleethosts); `fleet run` / `fleet record` (helper fleetrun) join here.
    fleet = sub.add_parser("fleet", help="many servers from an Ansible inventory: plan, run, record")
    fleetsub = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    plan = fleetsub.add_parser(
        "plan",
        help="read-only pre-flight of every host in parallel (exit 1 when any host would refuse)",
        parents=[fleet_inventory(), as_json("one JSON document: every host's findings and verdict")],
    )
    plan.add_argument("--forks", type=int, default=8, metavar="N", help="hosts checked at once (8)")
    add_fleet_run_commands(fleetsub)
    _add_fleet_host_params(fleetsub)  # the Ansible role's (helper fleetansible)


def _add_lab(sub: Any) -> None:
    lab = sub.add_parser("lab", help="lab check: capture how a server answers the kit's commands; compare")
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    capture = argparse.ArgumentParser(add_help=False)
    capture.add_argument("params", help="parameters file (YAML); only its host and winrm sections are used")
    capture.add_argument("--out", required=True, metavar="DIR", help="new folder for the bundle")
    capture.add_argument(
        "--reversible",
        action="store_true",
        help="also add, disable, re-enable, export and delete a throw-away certificate in MY (asks first)",
    )
    labsub.add_parser(
        "capture",
        help="run the probe set against the host of a parameters file",
        parents=[capture, yes(ASK_BEFORE_REVERSIBLE)],
    )
    compare = argparse.ArgumentParser(add_help=False)
    compare.add_argument("bundle", metavar="DIR", help="a folder written by `opslib lab capture`")
    compare.add_argument("--scenario", help="rehearsal scenario (default: chosen from the captured host)")
    labsub.add_parser(
        "compare",
        help="run the same probes on a matching rehearsal host; diff",
        parents=[compare, as_json("machine-readable output")],
    )


def _add_fleet_host_params(fleetsub: Any) -> None:
    hp = fleetsub.add_parser(
        "host-params",
        help="one host's inventory variables (JSON on standard input) → its parameters file (the Ansible role's)",
    )
    hp.add_argument("name", help="the host's inventory_hostname")
    hp.add_argument(
        "--base-dir", required=True, metavar="DIR", help="the inventory's folder (relative paths)"
    )
    hp.add_argument("--out", required=True, metavar="FILE", help="the parameters file to write")
    hp.add_argument(
        "--base-params", metavar="FILE", help="base parameters file when the host has no opslib_base_params"
    )
    hp.add_argument(
        "--vaulted",
        action="append",
        default=[],
        metavar="VARIABLE",
        help="a vault-encrypted variable Ansible hands to the run's environment (not on standard input)",
    )


# --- fleet run / fleet record (helper fleetrun) ------------------------------------------------------------


def add_fleet_run_commands(fleetsub: Any) -> None:
    """``opslib fleet run`` and ``opslib fleet record`` (helper module: opslib/cli/fleet_run.py)."""
    fr = fleetsub.add_parser(
        "run",
        help="renew every inventory host: batches (--serial), at most --forks at once, the first batch a canary",
        parents=[
            fleet_inventory(),
            yes("do not ask: renew every host (required unless --dry-run)"),
            evidence_root(default="evidence", help="where run folders and fleets/ go (./evidence)"),
            option("--forks", type=int, default=5, metavar="N", help="at most N hosts at once (5)"),
            option(
                "--serial",
                default="1,10%,100%",
                metavar="LIST",
                help="batch sizes, counts or percentages; the first batch is the canary, the last value repeats (1,10%%,100%%)",
            ),
            option(
                "--max-fail-percentage",
                type=float,
                default=0.0,
                metavar="P",
                help="stop after a batch whose failed hosts are more than P%% of it (0: any failure stops)",
            ),
            option(
                "--dry-run",
                action="store_true",
                help="every host's read-only checks and plan; change nothing",
            ),
            option(
                "--name",
                metavar="NAME",
                help="the fleet's name in its record (default: the inventory's file name)",
            ),
            verbose("a line per step of each host too"),
        ],
    )
    del fr
    rec = fleetsub.add_parser(
        "record",
        help="write the fleet record from run folders (what the Ansible playbook calls at its end)",
        parents=[evidence_root(default="evidence", help="the evidence root of the runs (./evidence)")],
    )
    rec.add_argument("--name", required=True, metavar="NAME", help="the fleet's name")
    rec.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders, one per host")
    rec.add_argument("--inventory", metavar="INV", help="hosts of this inventory without a run: not started")
    rec.add_argument("--limit", metavar="PATTERN", help="with --inventory: Ansible's --limit pattern")
    rec.add_argument(
        "--hmac-key", metavar="REF", help="secret reference of the HMAC key (default: the runs')"
    )


def _add_calendar(sub: Any) -> None:
    cal = sub.add_parser(
        "calendar",
        help="when must every certificate be renewed: what each site serves, expiry, renew-by date (read-only)",
        parents=[
            evidence_root(
                default=None,
                help="the evidence root: the input when no file is given (nothing is contacted), else where "
                "the latest evidence is read when a handshake fails",
            ),
            as_json("machine-readable output"),
        ],
    )
    cal.add_argument(
        "inputs",
        nargs="*",
        metavar="INVENTORY|PARAMS",
        help="an Ansible inventory, or parameters files (YAML)",
    )
    cal.add_argument(
        "--ics", metavar="FILE", help="also write an iCalendar file: one event per renew-by date"
    )
    cal.add_argument(
        "--lead-days",
        type=int,
        default=30,
        metavar="N",
        help="renew-by date = expiry minus N days (CA issuance, change approval; default 30)",
    )
    cal.add_argument(
        "--now", metavar="ISO", help="the date to count from (default: now), e.g. 2026-12-01T00:00:00Z"
    )
    cal.add_argument(
        "--no-requests", action="store_true", help="do not ask the servers for pending requests (no WinRM)"
    )
    cal.add_argument("--limit", metavar="PATTERN", help="inventory input: only these hosts (Ansible --limit)")
    cal.add_argument(
        "--vault-password-file", metavar="FILE", help="inventory input: the Ansible vault password"
    )
