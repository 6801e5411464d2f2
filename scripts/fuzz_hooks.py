"""Schemathesis hooks for scripts/fuzz-api.sh.

tus PATCH bodies (`application/offset+octet-stream`) are raw bytes; schemathesis has no
serializer for that media type, so it would refuse to test the operation at all.
"""

import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def offset_octet_stream(ctx, value):
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    return str(value).encode("utf-8")
