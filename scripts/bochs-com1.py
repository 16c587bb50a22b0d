#!/usr/bin/env python3
"""Bochs's COM1 as a TCP client (scripts/run-bochs.sh with COM1_INPUT).

`bochs-com1.py PORT LOG SCRIPT`: connects to Bochs's COM1 socket server on
localhost:PORT, appends everything COM1 sends to LOG, and types what
SCRIPT says, one step a line, in order:

    expect <text>   wait until the console so far contains <text>
    send <text>     send <text> (Python escapes: \\r, \\x1c for Ctrl-\\)

Ends when Bochs closes the connection.
"""
import codecs
import socket
import sys
import time


def main():
    port, log, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    steps = []
    for line in open(script, encoding="utf-8").read().splitlines():
        if line.strip():
            verb, _, arg = line.partition(" ")
            steps.append((verb, arg))
    for _ in range(600):
        try:
            sock = socket.create_connection(("localhost", port))
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit(f"bochs-com1: no COM1 server on port {port}")
    sock.settimeout(0.1)
    seen = b""
    with open(log, "ab") as out:
        while True:
            while steps:
                verb, arg = steps[0]
                if verb == "expect" and arg.encode() not in seen.replace(b"\r", b""):
                    break
                if verb == "send":
                    sock.sendall(codecs.decode(arg, "unicode_escape").encode("latin-1"))
                steps.pop(0)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            seen += data
            out.write(data)
            out.flush()


if __name__ == "__main__":
    main()
