"""Wire formats: one module each, decoding and encoding requests, responses, streams, errors."""
