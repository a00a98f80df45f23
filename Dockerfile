# The project's own services (gateway, worker, sink, notifier, case console, simulator) for docker-compose.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cems ./cems
COPY contracts ./contracts
COPY ingest ./ingest
COPY streams ./streams
COPY rules ./rules
COPY dashboards ./dashboards
COPY simulators ./simulators
COPY notify ./notify
COPY console ./console
RUN pip install --no-cache-dir . && useradd --system --home /app cems && mkdir -p /app/.cems && chown cems /app/.cems
USER cems
ENV CEMS_STATE_DIR=/app/.cems PYTHONUNBUFFERED=1
ENTRYPOINT ["cems"]
