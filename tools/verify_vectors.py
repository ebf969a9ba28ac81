#!/usr/bin/env python3
"""An independent verifier of authpipe-proxy's test vectors (testdata/vectors), written from
docs/formats.md with the Python standard library only.

It checks: the audit chain (SHA-256 over the length-prefixed encoding), checkpoint
signatures (Ed25519, RFC 8032, implemented below from the RFC's equations), webhook
signatures, OAuth states, connect session ids, browser bindings and API-key hashes
(HMAC-SHA256), the sealed-field envelope's parsing and associated data, and the wrapped
DEK's associated data. AES-GCM is not in the standard library: whether a tampered envelope
or wrapped key fails to *decrypt* is checked by the Go test only, and counted here as such.

Usage: python3 tools/verify_vectors.py testdata/vectors
Prints "all vectors agree" and exits 0, or prints FAIL lines and exits 1.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
from datetime import datetime

FAILURES = []
COUNTS = {}


def check(kind, name, ok):
    COUNTS[kind] = COUNTS.get(kind, 0) + 1
    if not ok:
        FAILURES.append("%s: %s" % (kind, name))


def load(d, name):
    with open(os.path.join(d, name), encoding="utf-8") as f:
        return json.load(f)


def lp32(*parts):
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def b64u_decode(s):
    """Strict base64url without padding (as Go's RawURLEncoding.Strict)."""
    if "=" in s or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in s):
        raise ValueError("not base64url")
    if len(s) % 4 == 1:
        raise ValueError("bad length")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != s:
        raise ValueError("non-canonical")
    return raw


# ---- Ed25519 verification (RFC 8032 section 5.1.7), from the curve's equations ----

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decode_point(b):
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _encode(p):
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BY = 4 * pow(5, P - 2, P) % P
BASE = (_recover_x(_BY, 0), _BY, 1, _recover_x(_BY, 0) * _BY % P)


def ed25519_verify(pub, msg, sig):
    if len(pub) != 32 or len(sig) != 64:
        return False
    a = _decode_point(pub)
    r = _decode_point(sig[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    neg_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return _encode(_add(_mul(s, BASE), _mul(h, neg_a))) == sig[:32]


# ---- envelope ----

def parse_envelope(b):
    """Returns (header, dek_id, nonce, sealed) or None for a malformed envelope."""
    if len(b) < 2 + 1 + 12 + 16 or b[0] != 0x01:
        return None
    n = b[1]
    if n < 1 or n > 64 or len(b) < 2 + n + 12 + 16:
        return None
    dek_id = b[2:2 + n]
    if any(c < 0x21 or c > 0x7E for c in dek_id):
        return None
    return b[:2 + n + 12], dek_id, b[2 + n:2 + n + 12], b[2 + n + 12:]


def envelope_aad(header, purpose, binding):
    aad = lp32(header, binding["workspace_id"].encode(), binding["owner_id"].encode(),
               binding["field"].encode(), purpose.encode())
    if binding.get("context"):
        aad += lp32(b"context", binding["context"].encode())
    if binding["origins"] is not None:
        aad += lp32(b"origins") + lp32(*[o.encode() for o in binding["origins"]])
    return aad


def verify_envelopes(d):
    f = load(d, "envelope.json")
    for c in f["valid"]:
        env = bytes.fromhex(c["envelope"])
        parsed = parse_envelope(env)
        ok = parsed is not None and parsed[1].decode() == f["dek_id"] and parsed[2].hex() == c["nonce"]
        ok = ok and envelope_aad(parsed[0], c["purpose"], c["binding"]).hex() == c["aad"]
        ok = ok and len(parsed[3]) == len(c["plaintext"].encode()) + 16
        check("envelope", c["name"], ok)
    for c in f["invalid"]:
        parsed = parse_envelope(bytes.fromhex(c["envelope"]))
        if c["error"] == "malformed":
            check("envelope", c["name"], parsed is None)
        else:  # needs AES-GCM: the Go test checks that it does not open
            check("envelope (parses; decryption failure checked in Go only)", c["name"], parsed is not None)


def verify_wrapped(d):
    f = load(d, "wrapped_dek.json")
    kid = "local:" + hashlib.sha256(b"authpipe local kek id\x00" + bytes.fromhex(f["kek"])).hexdigest()[:16]
    check("wrapped DEK", "kek id", kid == f["kek_id"])
    for c in f["valid"] + f["invalid"]:
        aad = lp32(c["workspace_id"].encode(), c["purpose"].encode(), c["dek_id"].encode())
        w = bytes.fromhex(c["wrapped"])
        check("wrapped DEK (AAD; unwrap checked in Go only)", c["name"],
              aad.hex() == c["aad"] and w[:12].hex() == c["nonce"] and len(w) == 12 + 32 + 16)


# ---- audit chain ----

def event_hash(e):
    def field(s):
        b = s.encode()
        return struct.pack(">Q", len(b)) + b
    at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
    # RFC 3339 with the fractional seconds Go's RFC3339Nano writes: trailing zeros dropped.
    frac = ("%06d" % at.microsecond).rstrip("0")
    at_s = at.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"
    m = (field("authpipe.audit.v1") + field(e["prev_hash"]) + field(e["id"]) + field(e["workspace_id"])
         + struct.pack(">Q", e["seq"]) + field(at_s) + field(e["type"]) + field(e["actor"])
         + field(e["connection_id"]) + field(e["outcome"]) + field(e["error_code"]) + field(e["data"]))
    return hashlib.sha256(m).hexdigest()


def verify_chain(events, genesis, head=None):
    """Returns (ok, first_bad)."""
    seq, prev = 0, genesis
    for e in events:
        if e["seq"] != seq + 1 or not hmac.compare_digest(e["prev_hash"], prev) \
                or not hmac.compare_digest(event_hash(e), e["hash"]):
            return False, e["id"]
        seq, prev = e["seq"], e["hash"]
    if head is not None and (head["seq"] != seq or not hmac.compare_digest(head["hash"], prev)):
        return False, head["event_id"]
    return True, ""


def verify_audit(d):
    f = load(d, "audit_chain.json")
    for c in f["chains"]:
        ok, bad = verify_chain(c["events"], f["genesis"], c.get("head"))
        check("audit chain", c["name"], ok == c["ok"] and bad == c.get("first_bad", ""))


# ---- checkpoints ----

def checkpoint_message(c):
    def field(s):
        b = s.encode()
        return struct.pack(">Q", len(b)) + b
    at = datetime.fromisoformat(c["at"].replace("Z", "+00:00"))
    frac = ("%06d" % at.microsecond).rstrip("0")
    at_s = at.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"
    return (field("authpipe.audit.checkpoint.v1") + struct.pack(">Q", c["v"]) + field(c["workspace_id"])
            + struct.pack(">Q", c["seq"]) + field(c["hash"]) + field(c["event_id"]) + field(at_s)
            + field(c["kid"]) + field(c["public_key"]))


def checkpoint_error(c, trusted):
    if c["v"] != 1:
        return "parse"
    try:
        pub, sig = b64u_decode(c["public_key"]), b64u_decode(c["sig"])
    except ValueError:
        return "parse"
    if len(pub) != 32 or len(sig) != 64:
        return "parse"
    kid = "ckp_" + base64.urlsafe_b64encode(hashlib.sha256(pub).digest()[:16]).decode().rstrip("=")
    if kid != c["kid"] or not ed25519_verify(pub, checkpoint_message(c), sig):
        return "signature"
    if trusted and c["kid"] not in trusted:
        return "untrusted"
    return ""


def verify_checkpoints(d):
    f = load(d, "checkpoint.json")
    check("checkpoint", "signed encoding", checkpoint_message(f["valid"][0]["checkpoint"]).hex() == f["message"])
    for c in f["valid"]:
        check("checkpoint", c["name"], checkpoint_error(c["checkpoint"], c["trusted"] or []) == "")
    for c in f["invalid"]:
        check("checkpoint", c["name"], checkpoint_error(c["checkpoint"], c["trusted"] or []) == c["error"])


# ---- webhook signatures ----

def webhook_ok(secret, header, body, now, tolerance):
    kid = "whk_" + hashlib.sha256(b"authpipe-proxy webhook kid v1\x00" + secret).hexdigest()[:12]
    ts, sigs = None, []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            ts = v
        elif k == "v1":
            sk, sep, sv = v.partition(":")
            if sep:
                if sk != kid:
                    continue
                v = sv
            try:
                sigs.append(bytes.fromhex(v))
            except ValueError:
                pass
    try:
        t = int(ts)
    except (TypeError, ValueError):
        return False
    if not sigs or abs(now - t) > tolerance:
        return False
    want = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).digest()
    return any(hmac.compare_digest(s, want) for s in sigs)


def verify_webhooks(d):
    f = load(d, "webhook.json")
    for c in f["cases"]:
        got = webhook_ok(c["secret"].encode(), c["header"], c["body"].encode(), f["now"], f["tolerance_seconds"])
        check("webhook", c["name"], got == c["ok"])


# ---- OAuth state, session ids, browser binding, API-key hash ----

def state_ok(key, kid, label, s):
    try:
        raw = b64u_decode(s)
    except ValueError:
        return False
    if len(raw) < 2 or raw[0] != 1:
        return False
    n = raw[1]
    if n < 1 or n > 64 or len(raw) != 2 + n + 32 + 32:
        return False
    body, tag = raw[:2 + n + 32], raw[2 + n + 32:]
    if raw[2:2 + n].decode("ascii", "replace") != kid:
        return False
    return hmac.compare_digest(hmac.new(key, label.encode() + body, hashlib.sha256).digest(), tag)


def verify_states(d):
    f = load(d, "state.json")
    key = bytes.fromhex(f["key"])
    for c in f["cases"]:
        ok = state_ok(key, f["kid"], f["label"], c["state"])
        if c["ok"]:
            ok = ok and hashlib.sha256(c["state"].encode()).hexdigest() == c["sha256"]
        check("state", c["name"], ok == c["ok"])


B32 = "abcdefghijklmnopqrstuvwxyz234567"


def b32_decode_canonical(s):
    if any(c not in B32 for c in s):
        return None
    raw = base64.b32decode(s.upper() + "=" * (-len(s) % 8))
    if base64.b32encode(raw).decode().lower().rstrip("=") != s:
        return None
    return raw


def session_id_ok(key, kid, label, sid):
    if not sid.startswith("cs_"):
        return False
    raw = b32_decode_canonical(sid[3:])
    if raw is None or len(raw) != 32:
        return False
    rnd, fp, tag = raw[:16], raw[16:20], raw[20:]
    if fp != hashlib.sha256(kid.encode()).digest()[:4]:
        return False
    return hmac.compare_digest(hmac.new(key, label.encode() + rnd + fp, hashlib.sha256).digest()[:12], tag)


def verify_session_ids(d):
    f = load(d, "session_id.json")
    key = bytes.fromhex(f["key"])
    for c in f["cases"]:
        check("session id", c["name"], session_id_ok(key, f["kid"], f["label"], c["session_id"]) == c["ok"])


def verify_bindings(d):
    f = load(d, "browser_binding.json")
    key = bytes.fromhex(f["key"])
    for c in f["cases"]:
        sid = c["session_id"].encode()
        mac = hmac.new(key, f["label"].encode() + struct.pack(">H", len(sid)) + sid + c["nonce"].encode(),
                       hashlib.sha256).hexdigest()
        check("browser binding", c["session_id"], hmac.compare_digest(mac, c["mac"]))


def verify_apikey_hashes(d):
    f = load(d, "apikey_hash.json")
    key = bytes.fromhex(f["key"])
    for c in f["cases"]:
        check("API-key hash", c["api_key"][:8], hmac.new(key, c["api_key"].encode(), hashlib.sha256).hexdigest() == c["hash"])


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join("testdata", "vectors")
    for fn in (verify_envelopes, verify_wrapped, verify_audit, verify_checkpoints, verify_webhooks,
               verify_states, verify_session_ids, verify_bindings, verify_apikey_hashes):
        fn(d)
    for kind in sorted(COUNTS):
        print("%4d  %s" % (COUNTS[kind], kind))
    if FAILURES:
        for f in FAILURES:
            print("FAIL", f)
        sys.exit(1)
    print("all vectors agree (%d checks)" % sum(COUNTS.values()))


if __name__ == "__main__":
    main()
