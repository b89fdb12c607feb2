"""The `hotline` command: config checks, the stack, test calls, speech analysis."""
