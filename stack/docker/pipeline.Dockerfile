# The airlake pipeline (firehoses and ingestion) with the project's pinned dependencies.
FROM python:3.11.7-slim-bookworm
WORKDIR /app
COPY setup.cfg pyproject.toml constraints.txt README.md* ./
COPY airlake ./airlake
COPY sources ./sources
COPY pipelines ./pipelines
COPY lake ./lake
COPY catalog ./catalog
COPY stack ./stack
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home airlake
USER airlake
ENV AIRLAKE__PROFILE=compose AIRLAKE__STATE_DIR=/home/airlake/.airlake
CMD ["airlake", "ingest"]
