#!/usr/bin/env python3
"""Compares kosoku report directories case by case, for scripts/autobahn.

    compare.py --direct DIR [--direct DIR...] --upgate DIR [--upgate DIR...]
               [--pings JSON...] [--list-differ]

Each directory holds kosoku's `index.json` (agent -> case id -> {behavior, behaviorClose,
remoteCloseCode, reportfile, ...}). A case's verdict is the pair (behavior, behaviorClose):
behavior is OK / NON-STRICT / INFORMATIONAL / UNIMPLEMENTED / FAILED / ERROR, behaviorClose
the closing-handshake verdict. The first directory (of each side) that has a case gives its
verdict; later ones are rechecks of the cases that differed. A case is:
  - the same: its first verdicts agree;
  - timing-dependent: they differ, but some verdict it got through upgate was also seen
    directly (in the first run or a recheck);
  - different: otherwise (or it ran on one side only).
Prints a summary table and the details of every case that is not the same; exits 1 if any
case is different, 0 otherwise. --list-differ only prints the ids of the cases whose first
verdicts disagree, one a line. --pings files are kosoku_run.py's counts, per case, of the
upgate keepalive pings the client got.
"""
import argparse
import collections
import json
import os
import sys


def load(d):
    """case id -> index entry, plus "dir" (where its report file is)."""
    with open(os.path.join(d, "index.json")) as f:
        index = json.load(f)
    cases = {}
    for agent_cases in index.values():
        for case_id, entry in agent_cases.items():
            cases[case_id] = dict(entry, dir=d)
    return cases


def load_runs(dirs):
    """case id -> [entry of each run that has it], in the order of dirs."""
    runs = collections.defaultdict(list)
    for d in dirs:
        for case_id, entry in load(d).items():
            runs[case_id].append(entry)
    return runs


def key(case_id):
    return [int(p) for p in case_id.split(".")]


def pair(entry):
    return (entry["behavior"], entry["behaviorClose"])


def verdict(entry):
    if entry is None:
        return "(not run)"
    v = entry["behavior"]
    if entry.get("behaviorClose") not in (None, "OK"):
        v += " / close " + entry["behaviorClose"]
    return v


def verdicts(entries):
    """'OK' or 'NON-STRICT (then OK, NON-STRICT)' for a first run and its rechecks."""
    if not entries:
        return "(not run)"
    first = verdict(entries[0])
    if len(entries) == 1:
        return first
    return "%s (rechecks: %s)" % (first, ", ".join(verdict(e) for e in entries[1:]))


def detail(entry):
    """One line from the case's own report: what it does and what happened."""
    if entry is None:
        return None, None
    try:
        with open(os.path.join(entry["dir"], entry["reportfile"])) as f:
            case = json.load(f)
    except OSError:
        return None, None
    happened = "; ".join(
        s
        for s in (
            case.get("result"),
            case.get("resultClose"),
            "remote close %s %r" % (case.get("remoteCloseCode"), case.get("remoteCloseReason") or "")
            if case.get("remoteCloseCode") is not None
            else "no close frame from the server",
            "not clean: " + case["wasNotCleanReason"] if case.get("wasNotCleanReason") else None,
        )
        if s
    )
    what = case.get("description") or case.get("expectation") or ""
    return " ".join(what.split()), happened


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--direct", action="append", required=True)
    ap.add_argument("--upgate", action="append", required=True)
    ap.add_argument("--pings", action="append", default=[])
    ap.add_argument("--list-differ", action="store_true")
    args = ap.parse_args()
    direct, upgate = load_runs(args.direct), load_runs(args.upgate)

    ids = sorted(set(direct) | set(upgate), key=key)
    same, flaky, differ = [], [], []
    for case_id in ids:
        d, u = direct.get(case_id, []), upgate.get(case_id, [])
        if d and u and pair(d[0]) == pair(u[0]):
            same.append(case_id)
        elif d and u and {pair(e) for e in d} & {pair(e) for e in u}:
            flaky.append(case_id)
        else:
            differ.append(case_id)

    if args.list_differ:
        for case_id in flaky + differ:
            print(case_id)
        return 0

    pings = {}
    for path in args.pings:
        try:
            with open(path) as f:
                for case_id, n in json.load(f).items():
                    pings[case_id] = pings.get(case_id, 0) + n
        except (OSError, ValueError):
            pass

    def counts(runs):
        c = collections.Counter(verdict(e[0]) for e in runs.values())
        return ", ".join("%s %d" % (v, n) for v, n in sorted(c.items(), key=lambda kv: -kv[1]))

    print()
    print("| what | count |")
    print("| --- | --- |")
    print("| cases run | %d |" % len(ids))
    print("| same verdict direct and through upgate | %d |" % len(same))
    print("| timing-dependent (differed once; rechecks saw the same verdicts both ways) | %d |" % len(flaky))
    print("| different verdict | %d |" % len(differ))
    if args.pings:
        print(
            "| cases in which the client got (and answered) upgate keepalive pings | %d (%d pings) |"
            % (len(pings), sum(pings.values()))
        )
    print()
    print("direct:         " + counts(direct))
    print("through upgate: " + counts(upgate))
    for title, group in (("timing-dependent", flaky), ("different", differ)):
        if not group:
            continue
        print()
        print("| %s case | direct | through upgate |" % title)
        print("| --- | --- | --- |")
        for case_id in group:
            print(
                "| %s | %s | %s |"
                % (case_id, verdicts(direct.get(case_id)), verdicts(upgate.get(case_id)))
            )
    if flaky or differ:
        print()
        for case_id in flaky + differ:
            d = (direct.get(case_id) or [None])[0]
            u = (upgate.get(case_id) or [None])[0]
            what, d_happened = detail(d)
            _, u_happened = detail(u)
            print("%s: %s" % (case_id, what or ""))
            print("    direct:  %s" % (d_happened or verdict(d)))
            print("    upgate:  %s" % (u_happened or verdict(u)))
            if pings.get(case_id):
                print("    (the client got %d upgate keepalive ping(s) in this case)" % pings[case_id])
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
