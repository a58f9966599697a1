"""The Flask application of the Gunicorn set-up certgate replaces, as it was:
it trusted the worker to put the client certificate's subject CN, issuer CN
and validity into X-USER, X-ISSUER, X-NOT_BEFORE and X-NOT_AFTER, and reads
them as it always did. Run under gunicorn behind certgate (tests/tests/system/migration.rs)."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/api/v0.1/headers")
def headers():
    return jsonify({
        "X-USER": request.headers["X-USER"],
        "X-ISSUER": request.headers["X-ISSUER"],
        "X-NOT_BEFORE": request.headers["X-NOT_BEFORE"],
        "X-NOT_AFTER": request.headers["X-NOT_AFTER"],
    })
