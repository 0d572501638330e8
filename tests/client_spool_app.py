"""An app process for the client's restart test: configured only by ``OPENCTS_CLIENT_*`` variables.

``record N``: record N traces, flush (OpenCTS is down, so they stay in the spool), print the stats as
JSON and wait to be killed. ``deliver``: record nothing, flush what the spool holds, print the stats.
``exit N``: record N traces, print the stats and return, leaving the sending to the exit hook.
"""

from __future__ import annotations

import sys
import time

import orjson

from opencts.client import Client


def main() -> None:
    client = Client()
    if sys.argv[1] in ("record", "exit"):
        for i in range(int(sys.argv[2])):
            client.record("createOrder", user="frank", status=201, request_id=f"order-{i}")
    if sys.argv[1] == "exit":  # no flush, no close: the exit hook sends what is buffered
        sys.stdout.buffer.write(orjson.dumps(client.stats().as_dict()) + b"\n")
        return
    if sys.argv[1] == "record":
        client.flush(0.5)
    else:
        client.flush(30)
    sys.stdout.buffer.write(orjson.dumps(client.stats().as_dict()) + b"\n")
    sys.stdout.flush()
    if sys.argv[1] == "record":
        time.sleep(600)  # killed here, as a crash would
    client.close()


if __name__ == "__main__":
    main()
