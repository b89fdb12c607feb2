"""Pure call-flow logic: the IVR as a state machine with no I/O.

A flow is a generator that yields :mod:`ivr.actions` and receives their results; a
transport (FastAGI, classic AGI, a test) executes the actions.
"""
