# OpenCTS as a container image: `docker build -t opencts .` then
#   docker run -d -p 8080:8080 -v opencts-data:/var/lib/opencts opencts
# See docs/deploy.md. Two stages: the builder makes the wheel and every dependency's wheel at the versions of
# requirements.lock; the runtime installs them with no compiler, no pip cache and no source tree.

FROM python:3.11-slim AS builder
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN python -m build --wheel --outdir /wheels . \
    && pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock /wheels/opencts-*.whl

FROM python:3.11-slim
# a fixed, unprivileged user: the data dir (0700) and everything in it belong to it alone
RUN useradd --system --uid 10001 --home-dir /var/lib/opencts --shell /usr/sbin/nologin opencts \
    && mkdir -p /var/lib/opencts /var/backups/opencts \
    && chown opencts:opencts /var/lib/opencts /var/backups/opencts \
    && chmod 0700 /var/lib/opencts /var/backups/opencts
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels opencts && rm -rf /tmp/wheels
ENV OPENCTS_DATA_DIR=/var/lib/opencts \
    OPENCTS_BIND=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
USER opencts
WORKDIR /var/lib/opencts
# the state, and a place for `opencts backup` (a backup never goes inside the data dir)
VOLUME ["/var/lib/opencts", "/var/backups/opencts"]
EXPOSE 8080
# liveness: /health answers "up" without credentials; the port is the one OPENCTS_BIND names
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('OPENCTS_BIND', ':8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]
ENTRYPOINT ["opencts"]
CMD ["serve"]
