"""The bypass matrix's Flask application (Werkzeug routing, default settings)."""
from flask import Flask, jsonify, request

app = Flask(__name__)

OVERRIDES = ["X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]


def answer(handler):
    received = [h.lower() for h in OVERRIDES if h in request.headers]
    return jsonify({"backend": "flask", "handler": handler, "path": request.path,
                    "method": request.method, "overrides": ",".join(received)})


@app.route("/admin/", methods=["GET", "POST", "DELETE", "PUT"])
@app.route("/admin/<path:rest>", methods=["GET", "POST", "DELETE", "PUT"])
def admin(rest=None):
    return answer("admin")


@app.route("/healthz")
def health():
    return answer("health")


@app.route("/public")
@app.route("/public/")
@app.route("/public/<path:rest>")
def public(rest=None):
    return answer("public")


@app.route("/", methods=["GET", "POST", "DELETE", "PUT"])
@app.route("/<path:rest>", methods=["GET", "POST", "DELETE", "PUT"])
def ordinary(rest=None):
    return answer("app")
