# subaccount-bot: one bot process per container (`subaccount-bot run`).
# Several containers on one PostgreSQL database behind a load balancer: docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY handlers ./handlers
COPY models ./models
COPY migrations ./migrations
RUN pip install . && useradd --system --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir -p /app/data && chown bot /app/data
USER bot
# the webhook server (updates on /<path>, GET /healthz for the load balancer)
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8443/healthz', timeout=4).status != 200)"
ENTRYPOINT ["subaccount-bot"]
CMD ["run", "--config", "/etc/subaccount-bot/config.toml"]
