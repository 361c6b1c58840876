# CPU-only image for the web app / REST API on the bundled model.
# Not built here (no Docker engine on the development machine): review before use.
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    ORT_DISABLE_TELEMETRY=1

WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY src ./src

# CPU build of torch first (the index URL avoids the CUDA wheels), pinned by constraints.txt.
RUN pip install --no-cache-dir -c constraints.txt torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -c constraints.txt ".[serve]"

RUN useradd --create-home rater
USER rater
EXPOSE 7860 8000

# Web app by default; `docker run ... accent-rater serve --host 0.0.0.0` for the REST API.
CMD ["accent-rater", "ui", "--host", "0.0.0.0", "--port", "7860"]
