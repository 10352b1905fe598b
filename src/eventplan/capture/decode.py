"""Request bodies as PostHog's clients send them, decoded to JSON.

The order follows PostHog's capture: take the `data` form/query field or the body;
form-decode urlencoded bodies; base64-decode when the payload looks like base64;
then the bytes decide: gzip, zstd and zlib's deflate (Capture v1's encodings) are
decompressed when their magic bytes are there, whatever a hint says (posthog-js
sends raw gzip as text/plain with no hint at all, and says `gzip-js` of base64).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from typing import Any
from urllib.parse import parse_qs

import msgspec
import zstandard

from eventplan.capture.errors import BadRequest, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# More than the handful of fields any client posts (`data`, `compression`, `ver`).
MAX_FORM_FIELDS = 100
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s_-]+$")
_json = msgspec.json.Decoder()
# An escaped backslash, a surrogate pair, or a lone surrogate, read left to right so
# that `\\ud800` (a backslash, then text) is not taken for an escape.
_SURROGATE_ESCAPES = re.compile(
    rb"\\\\"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def replace_lone_surrogates(payload: bytes) -> bytes:
    """`payload` with each lone UTF-16 surrogate escape made U+FFFD.

    JSON.stringify writes one for a string cut in the middle of an emoji: valid
    JSON, but not text, so the decoder refuses the whole body. PostHog's capture
    replaces them; a 400 would make posthog-js drop every event of the batch."""
    return _SURROGATE_ESCAPES.sub(
        lambda match: b"\\ufffd" if len(match[0]) == 6 else match[0], payload
    )


def gunzip(data: bytes, limit: int, wbits: int = 16 + zlib.MAX_WBITS, name: str = "gzip") -> bytes:
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {name}: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes once decompressed")
    if not decompressor.eof:
        raise BadRequest(f"the {name} body is truncated")
    return out


def unzstd(data: bytes, limit: int) -> bytes:
    """A zstd frame (posthog-python's `capture_compression="zstd"`), read no further
    than `limit` bytes."""
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            while len(out) <= limit:
                chunk = reader.read(min(1 << 20, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as exc:
        raise BadRequest(f"the body is not valid zstd: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes once decompressed")
    return bytes(out)


def is_zlib(payload: bytes) -> bool:
    """A zlib stream's two header bytes (posthog-python's v1 `deflate`): 0x78, and a
    16-bit value divisible by 31."""
    return payload[:1] == b"x" and len(payload) > 1 and int.from_bytes(payload[:2]) % 31 == 0


def decompress(payload: bytes, limit: int) -> bytes:
    """`payload` decompressed when its first bytes say how; else as it is."""
    if payload[:2] == GZIP_MAGIC:
        return gunzip(payload, limit)
    if payload[:4] == ZSTD_MAGIC:
        return unzstd(payload, limit)
    if is_zlib(payload):
        return gunzip(payload, limit, zlib.MAX_WBITS, "deflate")
    return payload


def _b64decode(data: bytes) -> bytes:
    # Form decoding turns an unescaped `+` into a space; put it back.
    data = re.sub(rb"[\r\n\t]", b"", data.strip()).replace(b" ", b"+")
    data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the body is not valid base64: {exc}") from exc


def decode_body(
    body: bytes,
    *,
    content_type: str,
    content_encoding: str,
    query: dict[str, str],
    limit: int,
) -> Any:
    """The JSON payload of a capture request, or BadRequest saying what was wrong."""
    compression = query.get("compression", "").lower()
    payload = body
    if "x-www-form-urlencoded" in content_type or (not body and "data" in query):
        try:
            fields = (
                parse_qs(body.decode("latin-1"), max_num_fields=MAX_FORM_FIELDS) if body else {}
            )
        except ValueError as exc:  # a form of a million empty fields costs memory for nothing
            raise BadRequest(
                f"the form body has more than {MAX_FORM_FIELDS} fields; PostHog's clients "
                "send `data` and `compression`"
            ) from exc
        if "data" in fields:
            payload = fields["data"][0].encode("latin-1")
            compression = fields.get("compression", [compression])[0].lower()
        elif "data" in query:
            payload = query["data"].encode("latin-1")
        # else: a client (curl, say) labelled a raw body as a form; read it as it is
    if not payload.strip():
        raise BadRequest("the request has no body and no `data` parameter")
    if compression == "lz64":
        raise BadRequest("lz64 compression is no longer sent by PostHog's clients; use gzip")
    if compression == "base64" or (
        payload[:1] not in (b"{", b"[", GZIP_MAGIC[:1], ZSTD_MAGIC[:1]) and _BASE64.match(payload)
    ):
        payload = _b64decode(payload)
    # The bytes decide, as in PostHog's capture: posthog-js may say `gzip-js` of a body
    # it did not compress (a form's base64), and drops the batch for good on a 400.
    payload = decompress(payload, limit)
    try:
        return decode_json(payload)
    except NotJSON as exc:
        said = compression in ("gzip", "gzip-js") or "gzip" in content_encoding.lower()
        what = "gzip (as the request says) nor JSON" if said else "valid JSON"
        raise BadRequest(f"the body is not {what}: {exc}") from exc


class NotJSON(ValueError):
    """Text that is not JSON, with the decoder's reason."""


def decode_json(payload: bytes) -> Any:
    """JSON as PostHog's capture reads it (a lone surrogate escape is U+FFFD), for
    request bodies and event files alike; NotJSON says why when it is not."""
    try:
        return _json.decode(payload)
    except msgspec.DecodeError as exc:
        repaired = replace_lone_surrogates(payload) if b"\\u" in payload else payload
        if repaired != payload:
            try:
                return _json.decode(repaired)
            except (msgspec.DecodeError, RecursionError):
                pass
        raise NotJSON(str(exc)) from exc
    except RecursionError as exc:
        raise NotJSON("it nests too deeply to read") from exc
