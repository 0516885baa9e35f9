# The adl-monitor worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY streams ./streams
RUN pip install --no-cache-dir --no-deps .
ENV ADL_METRICS_PORT=9464 ADL_METRICS_ADDR=0.0.0.0
EXPOSE 9464
USER nobody
ENTRYPOINT ["adl-monitor"]
CMD ["worker"]
