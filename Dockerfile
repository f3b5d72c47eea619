# curate worker image (also serves the FiftyOne App in docker-compose.yml).
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 FIFTYONE_DO_NOT_TRACK=true
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# CPU wheels keep the image small; use the CUDA index on GPU hosts.
RUN pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY curate ./curate
COPY db ./db
COPY workflows ./workflows
# The [ray] extra: the same image runs the Ray head and workers (docker-compose.yml).
RUN pip install -e '.[ray]'
RUN useradd --create-home curate && mkdir -p /var/lib/curate && chown curate /var/lib/curate
USER curate
CMD ["curate", "--help"]
