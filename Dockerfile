# syntax=docker/dockerfile:1
# The InfraGenius operator image: multi-stage, non-root, pinned base.
#   docker build -t ghcr.io/infragenius/infragenius-operator:0.1.0 .
# The chart runs it with a read-only root filesystem (only /tmp is writable) as UID 10001.

ARG PYTHON_IMAGE=python:3.12.7-slim-bookworm

# --- build: a wheel and a virtualenv holding it and its dependencies ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/infragenius
COPY pyproject.toml README.md ./
# Only the operator package: the dev tools (devtools/) are a separate distribution, never in the image.
COPY operator ./operator
RUN /opt/infragenius/bin/pip install --no-compile . \
 && /opt/infragenius/bin/python -m compileall -q /opt/infragenius

# --- runtime: the virtualenv only, no compilers, no pip cache, non-root ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="infragenius-operator" \
      org.opencontainers.image.source="https://github.com/infragenius/infragenius" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 infragenius \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin infragenius
COPY --from=build /opt/infragenius /opt/infragenius
ENV PATH=/opt/infragenius/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["infragenius"]
CMD ["operator"]
