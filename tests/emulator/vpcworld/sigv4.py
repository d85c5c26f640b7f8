"""AWS Signature Version 4 verification for the EC2 endpoint (hmac/hashlib only).

verify() recomputes the signature of a request from its method, path, query,
the headers named in SignedHeaders and the SHA-256 of the body, with the
secret of the access key named in the Credential, and compares. Any mismatch
(unknown key, wrong scope, wrong signature, a temporary key without its
session token, a date more than 15 minutes off) raises Ec2Error AuthFailure
(401), except a stale date which is RequestExpired (400), as EC2 answers.
"""

import calendar
import hashlib
import hmac
import time
import urllib.parse

from .model import Ec2Error

_AUTH_MSG = "AWS was not able to validate the provided access credentials"


def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def _canonical_query(query):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs))


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _parse_authorization(value):
    algo, _, rest = value.partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    fields = {}
    for part in rest.split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        return fields["Credential"].split("/"), fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401) from None


def verify(method, path, query, headers, body, region, keys, service="ec2"):
    """Check a request; keys maps access key id -> (secret, session token or None)."""
    auth = headers.get("Authorization")
    if not auth:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    cred, signed, signature = _parse_authorization(auth)
    if len(cred) != 5 or cred[4] != "aws4_request" or cred[3] != service or cred[2] != region:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    key_id, date = cred[0], cred[1]
    if key_id not in keys:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    secret, token = keys[key_id]
    if token is not None and headers.get("X-Amz-Security-Token") != token:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(date):
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    try:
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401) from None
    if abs(time.time() - t) > 900:
        raise Ec2Error("RequestExpired", f"Request has expired. Timestamp date is {amz_date}")
    names = signed.split(";")
    canon_headers = ""
    for n in names:
        v = headers.get(n)
        if v is None:
            raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
        canon_headers += f"{n}:{' '.join(v.split())}\n"
    payload = hashlib.sha256(body).hexdigest()
    declared = headers.get("X-Amz-Content-SHA256")
    if declared is not None and declared != payload:      # EC2 takes no unsigned payloads
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    canonical = "\n".join([method, urllib.parse.quote(path or "/", safe="/-_.~"), _canonical_query(query),
                           canon_headers, signed, payload])
    scope = "/".join(cred[1:])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    want = hmac.new(signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, signature):
        raise Ec2Error("AuthFailure", _AUTH_MSG, 401)
    return key_id
