"""Schemathesis hooks for kvr's JSON lines bodies (loaded through
SCHEMATHESIS_HOOKS by tests/server/openapi.rs).

The OpenAPI document describes an `application/x-ndjson` body as an array
whose items are the lines; these turn such an array into lines for a
request (batch input) and lines back into an array for a response (range
streams), so that Schemathesis generates batches and checks each line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def to_lines(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        return "".join(json.dumps(item) + "\n" for item in value).encode()
    # Negative cases that are not an array: one line of whatever it is.
    return (json.dumps(value) + "\n").encode()


@schemathesis.deserializer("application/x-ndjson")
def from_lines(ctx, response):
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]
