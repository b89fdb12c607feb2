# Asterisk 22 for the 12345 hotline: the same Debian sid packages as the development rootfs
# (runtime/rootfs.py PACKAGES), the Mandarin prompts, and the generated hold music.
# The configuration is NOT baked in: the `render` service of docker-compose.yml renders it
# from the hotline YAML into the shared volume behind /etc/asterisk-prod.
# Build from the repository root: docker build -f docker/asterisk.Dockerfile .

FROM python:3.11-slim-bookworm AS holdmusic
# The same chime `hotline up` installs (runtime.rootfs.install_hold_music), or
# sounds/zh/moh/*.wav when present.
WORKDIR /src
COPY pyproject.toml ./
COPY hotline/ hotline/
COPY asterisk_conf/ asterisk_conf/
COPY acd/ acd/
COPY sounds/ sounds/
# runtime imports the config schema and the renderer: the pins of pyproject.toml.
RUN pip install --no-cache-dir pydantic==2.13.4 PyYAML==6.0.3 Jinja2==3.1.6
RUN python -c "from pathlib import Path; from runtime.rootfs import install_hold_music; \
install_hold_music(Path('/out'), Path('sounds/zh'))"

FROM debian:sid
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get -o 'Acquire::Check-Valid-Until=false' update \
 && apt-get install -y --no-install-recommends \
        asterisk asterisk-modules asterisk-core-sounds-en-gsm \
 && rm -rf /var/lib/apt/lists/*
# Per-instance directories (asterisk_conf/templates/asterisk.conf.j2, instance "prod").
RUN mkdir -p /var/run/asterisk-prod /var/log/asterisk-prod /var/lib/asterisk-prod \
        /var/cache/asterisk-prod /var/spool/asterisk-prod/monitor/hotline \
        /var/lib/hotline-conf \
 && ln -s /var/lib/hotline-conf/asterisk-prod /etc/asterisk-prod
COPY sounds/zh/ /usr/share/asterisk/sounds/zh/hotline/
COPY --from=holdmusic /out/usr/share/asterisk/moh-hotline/ /usr/share/asterisk/moh-hotline/
VOLUME ["/var/lib/hotline-conf", "/var/spool/asterisk-prod"]
EXPOSE 5060/udp 5038/tcp 10000-20000/udp
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s \
    CMD asterisk -C /etc/asterisk-prod/asterisk.conf -rx "pjsip show transports" | grep -q transport-udp
# Runs as root inside the container: the rootfs notes (notes/asterisk.md) found that
# dropping privileges with -U broke reading the config; the container is the boundary.
CMD ["asterisk", "-f", "-C", "/etc/asterisk-prod/asterisk.conf"]
