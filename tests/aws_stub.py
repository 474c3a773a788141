#!/usr/bin/env python3
"""A stand-in for the AWS Abuse Signal API on loopback, for abuse-mailer's tests.

Every request's SigV4 signature is recomputed with botocore's SigV4Auth, an implementation
independent of the one under test; a request whose signature does not match is answered 403.
Every CreateAbuseReport body is checked against the service model's shapes (clientToken,
correlationId, report.xarf) and its XARF document validated against the v4 schemas with
PyPI's xarf (strict); a document that fails is answered 400 ValidationException.

A scenario file (JSON, read at each request) scripts the answers:
  {"create": {"<n>": {"status": 500, "body": {...}, "headers": {...},   # the n-th create call (0-based)
                      "after_storing": false}},                        # true: keep the report, lose the answer
   "status": {"<reportId>" or "*": {"status": "COMPLETED", "reasonCode": "ACTIONED", ...}},
   "deny": false,                                                         # answer 403 to everything
   "forget": false,                                                       # status queries: 404
   "status_delay": 0,                                                     # seconds before each status answer
   "status_about": "<reportId>",                                          # status answers name this report
   "status_answer": {"status": 404, "body": {...}},                       # every status query answered so
   "status_answer_for": {"<reportId>": {"status": 500, "body": {...}}}}   # one report's queries answered so
Without a script a create is accepted (202); the same clientToken with the same body returns
the same reportId, with another body 409 ConflictException, as the model says.

Each request is logged as one JSON line to --log.
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import xarf

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)
CLIENT_TOKEN_RE = re.compile(r"^[\x21-\x7E]{1,128}$")
CORRELATION_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,256}$")

args = None
lock = threading.Lock()
tokens = {}  # clientToken -> (reportId, body sha256, correlationId)
reports = {}  # reportId -> {"correlationId", "submittedAt"}
create_calls = [0]


def scenario():
    try:
        with open(args.scenario) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def verify(method, raw_path, headers, body):
    """None if the signature is right, else why not."""
    auth = headers.get("Authorization", "")
    m = AUTH_RE.match(auth)
    if not m:
        return "no or malformed Authorization header"
    key, day, region, service, signed, signature = m.groups()
    if key != args.key:
        return "unknown access key"
    if region != args.region or service != "abuse":
        return f"wrong scope {region}/{service}"
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(day):
        return "X-Amz-Date does not match the credential scope"
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return "bad X-Amz-Date"
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - signed_at).total_seconds())
    if skew > 300:
        return f"X-Amz-Date is {int(skew)}s off the real clock"
    names = signed.split(";")
    for needed in ["host", "x-amz-date"] + (["x-amz-security-token"] if args.token else []):
        if needed not in names:
            return f"{needed} is not signed"
    if "X-Amz-Content-SHA256" in headers:
        return "x-amz-content-sha256 is not expected: the stub hashes the body itself"
    if args.token and headers.get("X-Amz-Security-Token") != args.token:
        return "wrong or missing session token"
    signed_headers = {}
    for name in names:
        value = headers.get(name)
        if value is None:
            return f"signed header {name} is missing"
        signed_headers[name] = value
    url = "http://" + headers.get("Host", "") + raw_path
    request = AWSRequest(method=method, url=url, data=body, headers=signed_headers)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(args.key, args.secret, args.token), "abuse", args.region)
    if signer.signed_headers(signer.headers_to_sign(request)) != signed:
        return "SignedHeaders differ from botocore's"
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != signature:
        return "signature mismatch"
    return None


def xarf_errors(doc):
    try:
        parsed = xarf.parse(json.dumps(doc), strict=True)
    except Exception as e:  # the validator's own refusal
        return [str(e)]
    return [e.message for e in parsed.errors]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, headers=None, entry=None):
        # Logged before the client hears the answer: a test reads the log as soon as the
        # run that made the call has ended, and must find the call there.
        if entry is not None:
            entry["answer"] = status
            entry["answer_body"] = body
            with lock, open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if status >= 400 and isinstance(body, dict) and "__type" in body:
            self.send_header("x-amzn-ErrorType", body["__type"])
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        entry = {
            "method": method,
            "path": split.path,
            "query": split.query,
            "authorization": self.headers.get("Authorization", ""),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        why = verify(method, self.path, self.headers, body)
        entry["signature_ok"] = why is None
        entry["signature_problem"] = why
        if why is not None:
            return self.answer(
                403, {"__type": "InvalidSignatureException", "message": why}, entry=entry
            )
        script = scenario()
        if script.get("deny"):
            return self.answer(
                403,
                {
                    "__type": "AccessDeniedException",
                    "message": "User is not authorized to perform: abuse:CreateAbuseReport",
                },
                entry=entry,
            )
        if method == "POST" and split.path == "/v1/abuse":
            return self.create(body, script, entry)
        m = re.match(r"^/v1/abuse/([a-zA-Z0-9]{20,64})$", split.path)
        if method == "GET" and m:
            return self.status(m.group(1), script, entry)
        if method == "GET" and split.path == "/v1/abusestatuses":
            canned = script.get("list")
            if canned:
                return self.answer(canned["status"], canned.get("body", {}), entry=entry)
            q = dict(parse_qsl(split.query))
            items = [
                self.describe(rid, script)
                for rid, r in reports.items()
                if "correlationId" not in q or r["correlationId"] == q["correlationId"]
            ]
            return self.answer(
                200, {"reports": items[: int(q.get("maxResults", 50))]}, entry=entry
            )
        return self.answer(404, {"message": "no such operation"}, entry=entry)

    def create(self, body, script, entry):
        with lock:
            n = create_calls[0]
            create_calls[0] += 1
        entry["create_call"] = n
        if self.headers.get("Content-Type") != "application/json":
            return self.answer(400, {"__type": "ValidationException", "message": "content type"}, entry=entry)
        try:
            request = json.loads(body)
        except ValueError:
            return self.answer(400, {"__type": "ValidationException", "message": "not JSON"}, entry=entry)
        token = request.get("clientToken")
        correlation = request.get("correlationId")
        entry["client_token"] = token
        entry["correlation_id"] = correlation
        doc = (request.get("report") or {}).get("xarf")
        problems = []
        if set(request) - {"report", "clientToken", "correlationId"}:
            problems.append({"path": "/", "message": "unknown members"})
        if set(request.get("report") or {}) != {"xarf"} or not isinstance(doc, dict):
            problems.append({"path": "/report", "message": "exactly one member, xarf, an object"})
        if token is not None and not CLIENT_TOKEN_RE.match(token):
            problems.append({"path": "/clientToken", "message": "pattern"})
        if correlation is not None and not CORRELATION_RE.match(correlation):
            problems.append({"path": "/correlationId", "message": "pattern"})
        if isinstance(doc, dict):
            entry["xarf"] = doc
            errors = xarf_errors(doc)
            entry["xarf_errors"] = errors
            problems += [{"path": "/report/xarf", "message": e} for e in errors]
        if problems:
            return self.answer(
                400,
                {"__type": "ValidationException", "message": "Invalid request", "fieldList": problems},
                entry=entry,
            )
        canned = (script.get("create") or {}).get(str(n))
        if canned and not canned.get("after_storing"):
            return self.answer(canned["status"], canned.get("body", {}), canned.get("headers"), entry=entry)
        digest = hashlib.sha256(body).hexdigest()
        with lock:
            if token in tokens:
                rid, known, _ = tokens[token]
                if known != digest:
                    return self.answer(
                        409,
                        {"__type": "ConflictException", "message": "clientToken reused with a different payload"},
                        entry=entry,
                    )
                entry["duplicate"] = True
            else:
                rid = "R" + hashlib.sha256((token or digest).encode()).hexdigest()[:31].upper()
                if token:
                    tokens[token] = (rid, digest, correlation)
                reports[rid] = {"correlationId": correlation, "submittedAt": time.time()}
        entry["report_id"] = rid
        if canned:
            # Stored, but the answer is lost: what a crash or a cut connection after the 202 looks like.
            return self.answer(canned["status"], canned.get("body", {}), canned.get("headers"), entry=entry)
        return self.answer(202, {"reportId": rid, "correlationId": correlation}, entry=entry)

    def describe(self, rid, script):
        r = reports[rid]
        canned = (script.get("status") or {})
        s = dict(canned.get(rid) or canned.get("*") or {"status": "QUEUED", "description": "Received"})
        s.setdefault("description", s["status"].title())
        s.update(
            {
                "reportId": rid,
                "correlationId": r["correlationId"],
                "submittedAt": r["submittedAt"],
                "lastUpdatedAt": r["submittedAt"] + 60,
            }
        )
        return s

    def status(self, rid, script, entry):
        if script.get("status_delay"):
            time.sleep(script["status_delay"])
        canned = script.get("status_answer") or (script.get("status_answer_for") or {}).get(rid)
        if canned:
            return self.answer(canned["status"], canned.get("body", {}), canned.get("headers"), entry=entry)
        # "forget": AWS deletes test reports shortly after submission.
        if rid not in reports or script.get("forget"):
            return self.answer(
                404,
                {"__type": "ResourceNotFoundException", "message": "no such report", "resourceId": rid},
                entry=entry,
            )
        described = self.describe(rid, script)
        if script.get("status_about"):
            described["reportId"] = script["status_about"]
        return self.answer(200, described, entry=entry)

    def do_POST(self):
        self.handle_any("POST")

    def do_GET(self):
        self.handle_any("GET")


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--scenario", required=True)
    p.add_argument("--lifetime", type=int, default=600)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    # A stub left behind by a killed test ends by itself.
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
