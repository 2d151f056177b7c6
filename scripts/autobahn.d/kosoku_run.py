#!/usr/bin/env python3
"""kosoku's command line, with upgate's own keepalive pings kept out of the verdicts.

    kosoku_run.py [kosoku arguments...]     # e.g. ws://127.0.0.1:9001/ -i '1.*' -o DIR

Autobahn's cases (and so kosoku, which runs them unchanged) record every ping the server
sends as an event of the case: a case whose expected events do not list that ping fails,
and in the 9.*, 12.* and 13.* cases any ping at all ends the case at once (their base
class's onPing calls finishWhenDone, which closes when the empty expectation "matches").
With keepalive on, upgate pings the client whenever it has been silent for the interval,
between frames, and swallows the pong: the client's WebSocket layer answers it (kosoku
still does, automatically), and an application never sees it (the browser API cannot). So
this wrapper ignores, at the case level only, pings whose payload is upgate's keepalive
token (`upgate-ka-N`); every other ping, the server's or the test's, is recorded as
before. It counts the ignored ones per case and, when UPGATE_AUTOBAHN_KA_LOG names a file,
writes {case id: count} there as JSON at exit, so the run shows that the client did get
upgate's pings (and answered them) mid-case.
"""
import atexit
import json
import os
import sys

from kosoku._caseindex import initialize_shims

TOKEN = b"upgate-ka-"

initialize_shims()  # puts kosoku's vendored case files on sys.path, as the runner does
import case  # noqa: E402  (the Autobahn `Case` base class every case derives from)

seen = {}
original_on_ping = case.Case.onPing


def on_ping(self, payload):
    raw = payload.encode("latin-1") if isinstance(payload, str) else bytes(payload)
    if raw.startswith(TOKEN):
        case_id = type(self).__name__.removeprefix("Case").replace("_", ".")
        seen[case_id] = seen.get(case_id, 0) + 1
        return
    original_on_ping(self, payload)


case.Case.onPing = on_ping


def write_log():
    path = os.environ.get("UPGATE_AUTOBAHN_KA_LOG")
    if path:
        with open(path, "w") as f:
            json.dump(seen, f, indent=1, sort_keys=True)


atexit.register(write_log)

if __name__ == "__main__":
    from kosoku._cli import main

    sys.argv[0] = "kosoku"
    main()
