"""The Gunicorn set-up's own client test, pointed at certgate: Python
`requests` with a client certificate, against the migrated Flask application.

usage: migration_client.py URL CA CHAIN KEY LEAF LOOKALIKE_CHAIN LOOKALIKE_KEY

Prints one JSON object: what the application read (`got`), what the old
worker would have given it for LEAF (`want`, from `getpeercert()` as the
worker did, via the ssl module's certificate decoder), and the exception a
client from a look-alike CA gets (`lookalike`).
"""
import json
import ssl
import sys

import requests


def main():
    url, ca, chain, key, leaf, lookalike_chain, lookalike_key = sys.argv[1:8]
    reply = requests.get(url, cert=(chain, key), verify=ca, timeout=10)
    got = reply.json() if reply.status_code == 200 else {"status": reply.status_code, "body": reply.text}

    # what the Gunicorn worker computed from ssl's getpeercert() dict
    peer = ssl._ssl._test_decode_cert(leaf)
    subject = dict(rdn[0] for rdn in peer["subject"])
    issuer = dict(rdn[0] for rdn in peer["issuer"])
    want = {
        "X-USER": subject["commonName"],
        "X-ISSUER": issuer["commonName"],
        "X-NOT_BEFORE": str(int(ssl.cert_time_to_seconds(peer["notBefore"]))),
        "X-NOT_AFTER": str(int(ssl.cert_time_to_seconds(peer["notAfter"]))),
    }

    try:
        r = requests.get(url, cert=(lookalike_chain, lookalike_key), verify=ca, timeout=10)
        lookalike = f"no error: {r.status_code}"
    except requests.exceptions.SSLError:
        lookalike = "SSLError"
    except requests.exceptions.RequestException as e:
        lookalike = type(e).__name__

    print(json.dumps({"got": got, "want": want, "lookalike": lookalike}))


if __name__ == "__main__":
    main()
