"""A ``credential_process`` helper for the stand-ins (what aws-vault or granted would be).

``python -m pool.standins.credential_process --url URL --token-file PATH [--mode MODE]``
asks a container-credentials stand-in (``URL``, with the ``Authorization``
token read from ``PATH``) for fresh credentials and prints them in the
``credential_process`` format (``Version`` 1, with ``Expiration``). Modes, for
the failure tests: ``ok`` (default), ``no-expiration`` (omit ``Expiration``),
``hang`` (never finish), ``fail`` (exit 3, a message and a planted secret on
stderr), ``garbage`` (print something that is not JSON). Stdlib only, blocking:
it is a child process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

__all__ = ["PLANTED", "main"]

PLANTED = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"  # must never reach an error message


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="credential_process")
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--mode", default="ok",
                   choices=["ok", "no-expiration", "hang", "fail", "garbage"])  # fmt: skip
    args = p.parse_args(argv)
    if args.mode == "hang":
        while True:
            time.sleep(3600)
    if args.mode == "fail":
        print(f"error: vault is locked (aws_secret_access_key={PLANTED})", file=sys.stderr)
        return 3
    if args.mode == "garbage":
        print("Enter passphrase for vault: ")
        return 0
    with open(args.token_file, encoding="utf-8") as fh:
        token = fh.read().strip()
    request = urllib.request.Request(args.url, headers={"Authorization": token})
    with urllib.request.urlopen(request, timeout=5) as resp:  # loopback stand-in only
        doc = json.load(resp)
    out = {
        "Version": 1,
        "AccessKeyId": doc["AccessKeyId"],
        "SecretAccessKey": doc["SecretAccessKey"],
        "SessionToken": doc["Token"],
    }
    if args.mode == "ok":
        out["Expiration"] = doc["Expiration"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
