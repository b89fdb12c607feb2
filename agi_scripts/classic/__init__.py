"""Classic (process-per-call, stdin/stdout) AGI scripts built on pyst2."""
