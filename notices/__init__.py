"""Incident notices (第十三条, 突发事件): set by an admin with a window and a scope, played to
callers by the IVR and shown to agents as a knowledge-base note.  See README.md."""
