"""The agent console: a FastAPI app for agents' screens and supervisors (issue 3).

``python -m console serve --config hotline.yaml`` (the Stack starts it on ``console_port``).
"""
