"""Asterisk configuration rendered from the validated hotline config (``render.render``)."""
