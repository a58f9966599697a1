"""An application that takes the client certificate from RFC 9440's
Client-Cert and Client-Cert-Chain request headers, parsed as RFC 8941
structured fields with http-sfv, as frameworks that read them do. It answers
with the SHA-256 of each certificate it got (DER), so the caller can compare
them with the certificates the client sent. Run under gunicorn."""
import hashlib

import http_sfv
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def certificates(path):
    out = {}
    leaf = request.headers.get("Client-Cert")
    if leaf is not None:
        item = http_sfv.Item()
        item.parse(leaf.encode("ascii"))
        assert isinstance(item.value, bytes) and item.value[:1] == b"\x30", "a DER SEQUENCE"
        out["client_cert_sha256"] = hashlib.sha256(item.value).hexdigest()
    chain = request.headers.get("Client-Cert-Chain")
    if chain is not None:
        members = http_sfv.List()
        members.parse(chain.encode("ascii"))
        out["chain_sha256"] = [hashlib.sha256(m.value).hexdigest() for m in members]
    return jsonify(out)
