# syntax=docker/dockerfile:1
# DFIP platform image: one image runs the stream worker (default), topic init and the simulator.
#
#   docker build -t dfip:dev .
#   docker run --rm dfip:dev --help
#   docker run --rm -e DFIP_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 dfip:dev worker
#
# Two stages: the build stage installs the project and its dependencies into a virtualenv and
# compiles the worker's hot modules with mypyc (dfip/native.py; --build-arg DFIP_COMPILE=0 for
# pure Python); the runtime stage copies only that virtualenv (no pip cache, no sources, no
# build tools, no compiler).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
ARG DFIP_COMPILE=1
# a C compiler for mypyc (the slim image has Python's headers but no gcc)
RUN if [ "$DFIP_COMPILE" != 0 ]; then \
      apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/dfip
WORKDIR /src
# constraints.txt holds the tested versions; the glob keeps it optional (COPY succeeds
# without it because pyproject.toml always matches).
COPY pyproject.toml README.md constraints.txt* ./
# Dependencies first, in a layer of their own: it changes only with pyproject.toml or
# constraints.txt, so editing the source reuses it instead of reinstalling everything.
RUN set -eu; \
    if [ -f constraints.txt ]; then set -- --constraint constraints.txt; else set --; fi; \
    /opt/dfip/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["rocksdb"]))' > /tmp/requirements.txt; \
    /opt/dfip/bin/pip install "$@" --requirement /tmp/requirements.txt
COPY core/ core/
COPY dfip/ dfip/
COPY schemas/ schemas/
COPY streams/ streams/
COPY adapters/ adapters/
# the hot modules compiled in place (mypy and setuptools only for the build: removed after),
# then the project itself, the extensions with it (package data); its dependencies are in
# place and the constraint keeps them unchanged
RUN set -eu; \
    if [ -f constraints.txt ]; then set -- --constraint constraints.txt; else set --; fi; \
    if [ "$DFIP_COMPILE" != 0 ]; then \
      /opt/dfip/bin/pip install "$@" mypy "setuptools>=77"; \
      DFIP_COMPILE=1 /opt/dfip/bin/python -m dfip.native build; \
      /opt/dfip/bin/pip uninstall -y mypy librt pathspec ast-serialize; \
      rm -rf build; \
    fi; \
    /opt/dfip/bin/pip install "$@" --no-deps ".[rocksdb]"; \
    (cd / && /opt/dfip/bin/python -m dfip.native status); \
    /opt/dfip/bin/pip check; \
    /opt/dfip/bin/dfip --version

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="dfip" \
      org.opencontainers.image.description="Digital Finance Integration Platform: Faust workers, topic init, simulator" \
      org.opencontainers.image.licenses="Apache-2.0"
# /metrics must be reachable from outside the container (the worker's default is loopback).
ENV PATH=/opt/dfip/bin:$PATH \
    DFIP_WORKER_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 dfip \
    && useradd --system --uid 10001 --gid dfip --home-dir /var/lib/dfip --create-home \
       --shell /usr/sbin/nologin dfip
COPY --from=build /opt/dfip /opt/dfip
# The worker keeps its local table state (RocksDB) under the working directory.
WORKDIR /var/lib/dfip
USER 10001:10001
# Faust web server: /metrics and /health (DFIP_WORKER_WEB_PORT).
EXPOSE 6066
ENTRYPOINT ["dfip"]
CMD ["worker"]
