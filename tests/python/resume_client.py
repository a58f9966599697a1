#!/usr/bin/env python3
"""A client that resumes its TLS session, as browsers, curl and Python do.

Connects COUNT times to HOST:PORT with one client certificate, handing each
connection the session of the one before (ssl's `session=`), sends one
HTTP/1.1 GET and prints a JSON line per connection: whether the session was
resumed, the status, the TLS version and the reply body.

usage: resume_client.py HOST PORT CA CHAIN KEY TLS_VERSION(1.2|1.3) PATH COUNT [GO_FILE]

With GO_FILE, each connection after the first waits until that file exists
(a test changes the server in between). A connection that fails prints its
error instead of a status.
"""
import json
import os
import socket
import ssl
import sys
import time


def main():
    host, port, ca, chain, key, version, path, count = sys.argv[1:9]
    go_file = sys.argv[9] if len(sys.argv) > 9 else None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(chain, key)
    pinned = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx.minimum_version = ctx.maximum_version = pinned
    session = None
    for i in range(int(count)):
        if go_file and i > 0:
            deadline = time.monotonic() + 120
            while not os.path.exists(go_file) and time.monotonic() < deadline:
                time.sleep(0.02)
        try:
            reused, status, tls_version, body, session = one(ctx, host, port, path, session)
        except (ssl.SSLError, OSError) as e:
            print(json.dumps({"reused": False, "status": 0, "tls": None, "body": "", "error": str(e)}))
            sys.stdout.flush()
            continue
        print(json.dumps({"reused": reused, "status": status, "tls": tls_version, "body": body}))
        sys.stdout.flush()


def one(ctx, host, port, path, session):
    """One connection offering `session`: (reused, status, TLS version, body, its session)."""
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            # a TLS 1.3 ticket arrives after the handshake: take the
            # session once the reply has been read
            reused = tls.session_reused
            session = tls.session
            tls_version = tls.version()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise OSError("the connection closed without a response")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return reused, status, tls_version, body.decode("utf-8", "replace"), session


def dechunk(body):
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return out


if __name__ == "__main__":
    main()
