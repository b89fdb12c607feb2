"""The only code that speaks AGI: the asyncio FastAGI server, its handlers, a classic script."""
