# dcr-gateway: guard OAuth dynamic client registration in front of an authorization server.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY policies ./policies
# The packaged managed list is a symlink into policies/; copy the real file over it.
RUN rm -f gateway/data/mcp-clients.yaml \
 && cp policies/managed/mcp-clients.yaml gateway/data/mcp-clients.yaml \
 && pip install . \
 && mkdir -p /etc/dcr-gateway/policies \
 && cp policies/default.yaml /etc/dcr-gateway/policies/default.yaml \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dcr \
 && rm -rf /app

# The config is mounted at /etc/dcr-gateway/config.yaml; listen on 0.0.0.0 there (8080 by
# default; the health check follows whatever port the config says).
USER 10001
EXPOSE 8080
# SIGTERM (docker stop) drains requests in flight for server.shutdown_timeout (10s by
# default); give docker stop at least that: docker stop -t 15, or stop_grace_period.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["dcr-gateway", "healthcheck", "-c", "/etc/dcr-gateway/config.yaml"]
ENTRYPOINT ["dcr-gateway"]
CMD ["run", "-c", "/etc/dcr-gateway/config.yaml"]
