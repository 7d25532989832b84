#!/usr/bin/env python3
"""A local stand-in for Turso, for a region whose provider is Turso.

Turso's Platform API (api.turso.tech) and its databases cannot be reached
from the machines Amanah is built and tested on, so `cargo xtask up` runs
this in their place. It decides nothing of Amanah's; it only answers as
Turso's documentation says Turso answers (docs.turso.tech, API reference,
checked 2026-12), and keeps each database as a namespace of a real sqld:

  GET    /v1/locations                                   {"locations": {code: name}}
  POST   /v1/organizations/{org}/groups                  {"name","location"} -> {"group"}
  GET    /v1/organizations/{org}/groups/{group}          -> {"group": {name, primary, locations, ...}}
  POST   /v1/organizations/{org}/groups/{group}/auth/tokens -> {"jwt"}
  POST   /v1/organizations/{org}/databases               {"name","group"} -> {"database": {DbId, Hostname, Name}}
  GET    /v1/organizations/{org}/databases/{name}        -> {"database"}
  DELETE /v1/organizations/{org}/databases/{name}        -> {"database": name}

and a database's own URL (Turso: https://<name>-<org>.turso.io) is
http://127.0.0.1:<port>/<name>: Hrana requests under it go to the sqld
namespace <name>, with the group's token as bearer.

Where it differs from Turso, on purpose: a group token is 32 random bytes
(hex), not an Ed25519-signed JWT, and never expires; one organisation only;
no replicas, branches, seeds or usage. Platform calls need the platform
token given in TURSO_STANDIN_API_TOKEN. Its registry of groups, databases
and tokens is a JSON file (--state) holding names only.

  turso-standin.py serve --port P --sqld-url U --sqld-admin-url A --org O --state F
  turso-standin.py setup --api URL --org O --group G --location L
      (as an operator's first steps: the group, if missing, then a group
      token, printed; the platform token from TURSO_STANDIN_API_TOKEN)
"""

import argparse
import base64
import http.client
import json
import os
import re
import secrets
import sys
import threading
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Turso's locations for new groups (region-config/src/lib.rs, TURSO_LOCATIONS).
LOCATIONS = {
    "aws-ap-northeast-1": "AWS AP NorthEast (Tokyo)",
    "aws-ap-south-1": "AWS AP South (Mumbai)",
    "aws-ap-southeast-1": "AWS AP SouthEast (Singapore)",
    "aws-eu-central-1": "AWS EU Central (Frankfurt)",
    "aws-eu-west-1": "AWS EU West (Ireland)",
    "aws-us-east-1": "AWS US East (Virginia)",
    "aws-us-east-2": "AWS US East (Ohio)",
    "aws-us-west-2": "AWS US West (Oregon)",
}
# "Must contain only lowercase letters, numbers, dashes. No longer than 32
# characters." (Turso's create-database reference)
NAME = re.compile(r"^[a-z0-9-]{1,32}$")


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.data = {"groups": {}, "databases": {}, "tokens": {}}
        if os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)

    def save(self):
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "turso-standin"
    # Headers and body leave in one write, with no Nagle delay: written
    # apart, the body waited for the client's delayed ACK, 40 ms a request
    # (measured: 45 ms through the stand-in against 1.2 ms to sqld direct).
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, fmt, *args):  # the requests' paths name databases only
        sys.stderr.write("turso-standin: " + (fmt % args) + "\n")

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def body(self):
        # wasi-http (the Spin host) sends bodies chunked.
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def bearer(self):
        auth = self.headers.get("authorization") or ""
        return auth[7:] if auth.startswith("Bearer ") else None

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        path = urllib.parse.urlsplit(self.path).path
        body = self.body()
        if path.startswith("/v1/"):
            if self.bearer() != self.server.api_token:
                return self.answer(401, {"error": "invalid or missing platform API token"})
            return self.platform(method, path, body)
        return self.database(method, path, body)

    # The Platform API.
    def platform(self, method, path, body):
        s = self.server
        parts = path.strip("/").split("/")
        if parts == ["v1", "locations"] and method == "GET":
            return self.answer(200, {"locations": LOCATIONS})
        if len(parts) < 4 or parts[1] != "organizations" or parts[2] != s.org:
            return self.answer(404, {"error": "organization not found"})
        rest = parts[3:]
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            return self.answer(400, {"error": "invalid JSON body"})
        with s.state.lock:
            groups = s.state.data["groups"]
            dbs = s.state.data["databases"]
            if rest == ["groups"] and method == "POST":
                name, location = req.get("name"), req.get("location")
                if not isinstance(name, str) or not NAME.match(name):
                    return self.answer(400, {"error": "invalid group name"})
                if location not in LOCATIONS:
                    return self.answer(400, {"error": "invalid location"})
                if name in groups:
                    return self.answer(409, {"error": "group already exists"})
                groups[name] = {"name": name, "primary": location, "locations": [location],
                                "uuid": str(uuid.uuid4()), "version": "standin", "archived": False}
                s.state.save()
                return self.answer(200, {"group": groups[name]})
            if len(rest) == 2 and rest[0] == "groups" and method == "GET":
                g = groups.get(rest[1])
                return self.answer(200, {"group": g}) if g else self.answer(404, {"error": "group not found"})
            if len(rest) == 4 and rest[0] == "groups" and rest[2:] == ["auth", "tokens"] and method == "POST":
                if rest[1] not in groups:
                    return self.answer(404, {"error": "group not found"})
                token = secrets.token_hex(32)
                s.state.data["tokens"][token] = rest[1]
                s.state.save()
                return self.answer(200, {"jwt": token})
            if rest == ["databases"] and method == "POST":
                name, group = req.get("name"), req.get("group")
                if not isinstance(name, str) or not NAME.match(name):
                    return self.answer(400, {"error": "invalid database name"})
                if group not in groups:
                    return self.answer(404, {"error": "group not found"})
                if name in dbs:
                    return self.answer(409, {"error": "database already exists"})
                status, text = s.sqld_admin("POST", "/v1/namespaces/%s/create" % name, b"{}")
                if status >= 300 and "already exists" not in text:
                    return self.answer(502, {"error": "the backing sqld answered %d" % status})
                dbs[name] = {"DbId": str(uuid.uuid4()), "Name": name, "group": group}
                s.state.save()
                return self.answer(200, {"database": {"DbId": dbs[name]["DbId"],
                                                      "Hostname": "%s-%s.turso.io" % (name, s.org),
                                                      "Name": name}})
            if len(rest) == 2 and rest[0] == "databases":
                db = dbs.get(rest[1])
                if not db:
                    return self.answer(404, {"error": "database not found"})
                if method == "GET":
                    return self.answer(200, {"database": {"DbId": db["DbId"], "Name": db["Name"],
                                                          "group": db["group"],
                                                          "Hostname": "%s-%s.turso.io" % (db["Name"], s.org),
                                                          "primaryRegion": groups[db["group"]]["primary"]}})
                if method == "DELETE":
                    status, _ = s.sqld_admin("DELETE", "/v1/namespaces/%s" % rest[1], b"")
                    if status >= 300 and status != 404:
                        return self.answer(502, {"error": "the backing sqld answered %d" % status})
                    del dbs[rest[1]]
                    s.state.save()
                    return self.answer(200, {"database": rest[1]})
        return self.answer(404, {"error": "no such endpoint"})

    # A database's own URL: Hrana to its sqld namespace.
    def database(self, method, path, body):
        s = self.server
        name, _, rest = path.lstrip("/").partition("/")
        with s.state.lock:
            db = s.state.data["databases"].get(name)
            group = s.state.data["tokens"].get(self.bearer() or "")
        if not db:
            return self.answer(404, {"error": "database not found"})
        if group != db["group"]:
            return self.answer(401, {"error": "Unauthorized: invalid or missing database token"})
        headers = {"x-namespace-bin": base64.b64encode(name.encode()).decode().rstrip("=")}
        if self.headers.get("content-type"):
            headers["content-type"] = self.headers["content-type"]
        conn = http.client.HTTPConnection(s.sqld.hostname, s.sqld.port, timeout=60)
        try:
            conn.request(method, "/" + rest, body=body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            self.answer(r.status, data, r.getheader("content-type") or "application/json")
        except OSError as e:
            self.answer(502, {"error": "the backing sqld did not answer: %s" % e.__class__.__name__})
        finally:
            conn.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def sqld_admin(self, method, path, body):
        req = urllib.request.Request(self.admin_url + path, data=body or None, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")


def serve(a):
    token = os.environ.get("TURSO_STANDIN_API_TOKEN")
    if not token:
        sys.exit("turso-standin: TURSO_STANDIN_API_TOKEN is not set")
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.api_token = token
    srv.org = a.org
    srv.sqld = urllib.parse.urlsplit(a.sqld_url)
    srv.admin_url = a.sqld_admin_url.rstrip("/")
    srv.state = State(a.state)
    srv.serve_forever()


def setup(a):
    token = os.environ.get("TURSO_STANDIN_API_TOKEN") or sys.exit("TURSO_STANDIN_API_TOKEN is not set")

    def call(method, path, body=None):
        req = urllib.request.Request(a.api.rstrip("/") + "/v1/organizations/%s%s" % (a.org, path),
                                     data=json.dumps(body).encode() if body is not None else None,
                                     method=method,
                                     headers={"authorization": "Bearer " + token,
                                              "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, {}

    status, _ = call("GET", "/groups/" + a.group)
    if status == 404:
        status, _ = call("POST", "/groups", {"name": a.group, "location": a.location})
        if status != 200:
            sys.exit("turso-standin setup: creating group %s answered %d" % (a.group, status))
    status, answer = call("POST", "/groups/%s/auth/tokens" % a.group)
    if status != 200:
        sys.exit("turso-standin setup: minting a group token answered %d" % status)
    print(answer["jwt"])


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sqld-url", required=True)
    s.add_argument("--sqld-admin-url", required=True)
    s.add_argument("--org", required=True)
    s.add_argument("--state", required=True)
    t = sub.add_parser("setup")
    t.add_argument("--api", required=True)
    t.add_argument("--org", required=True)
    t.add_argument("--group", required=True)
    t.add_argument("--location", required=True)
    a = p.parse_args()
    serve(a) if a.cmd == "serve" else setup(a)


if __name__ == "__main__":
    main()
