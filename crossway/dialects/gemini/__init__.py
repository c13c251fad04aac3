"""Google's Gemini generateContent wire format: requests, responses, streams, errors."""
