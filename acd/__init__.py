"""Automatic call distribution: the only owner of agent and queue state."""
