"""A presigned S3 link checked as S3 checks it. The local S3 (moto) serves any
link that carries a signature, whatever the signature says; real S3 recomputes
it from the request (its method, its URL, the key's secret) and refuses a link
signed for another method or another region. The grader knows the secret it
gave the app, so it recomputes the signature the same way."""
import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

# Methods a link may have been presigned for, GET first.
METHODS = ("GET", "PUT", "HEAD", "DELETE", "POST")
# Query parameters SigV2 signs as part of the resource (botocore's HmacV1Auth list).
SIGV2_SUBRESOURCES = (
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging",
    "restore", "storageClass", "notification", "replication", "requestPayment", "analytics", "metrics",
    "inventory", "select", "select-type", "object-lock")


def _encode(text):
    return quote(text, safe="-_.~")


def _hmac(key, text, digest=hashlib.sha256):
    return hmac.new(key, text.encode(), digest).digest()


def sigv4(method, url, secret):
    """The SigV4 query signature (hex) of url for `method`, or None if the link signs
    headers other than host (their values are not in the link)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = {k.lower(): v for k, v in pairs}
    if query.get("x-amz-signedheaders", "host") != "host":
        return None
    _key_id, date, region, service, terminal = query["x-amz-credential"].split("/")
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(
        (_encode(k), _encode(v)) for k, v in pairs if k.lower() != "x-amz-signature"))
    canonical_request = "\n".join([method, parts.path or "/", canonical_query, f"host:{parts.netloc}", "",
                                   "host", "UNSIGNED-PAYLOAD"])
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", query["x-amz-date"], f"{date}/{region}/{service}/{terminal}",
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, terminal):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def sigv2(method, url, secret, bucket):
    """The SigV2 query signature (base64) of url for `method`."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    resource = parts.path or "/"
    if not resource.startswith(f"/{bucket}/") and resource != f"/{bucket}":
        resource = f"/{bucket}{resource}"  # a virtual-hosted link: the bucket is in the host name
    signed = sorted((k, v) for k, v in pairs if k in SIGV2_SUBRESOURCES)
    if signed:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in signed)
    string_to_sign = f"{method}\n\n\n{query.get('Expires', '')}\n{resource}"
    return base64.b64encode(_hmac(secret.encode(), string_to_sign, hashlib.sha1)).decode()


def version(url):
    """'v4', 'v2' or None: the signature version a link carries."""
    query = {k.lower() for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    return "v4" if "x-amz-signature" in query else "v2" if "signature" in query else None


def signed_method(url, secret, bucket):
    """The HTTP method the link's signature is valid for, with this secret; None if
    none is (signed with another secret, or changed after signing); '?' if it cannot
    be told (it signs headers whose values the link does not carry)."""
    query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    kind = version(url)
    for method in METHODS:
        if kind == "v4":
            expected = sigv4(method, url, secret)
            if expected is None:
                return "?"
            if hmac.compare_digest(expected, query["x-amz-signature"].lower()):
                return method
        elif kind == "v2":
            if hmac.compare_digest(sigv2(method, url, secret, bucket), query["signature"]):
                return method
    return None


def signing_region(url):
    """The region a SigV4 link is signed for (from X-Amz-Credential), or None."""
    query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    parts = query.get("x-amz-credential", "").split("/")
    return parts[2] if len(parts) == 5 else None
