# Image for the dashboard and trainer services of docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
# CUDA build of torch from PyPI inside the image (the GPU trainer needs it).
RUN pip install --no-cache-dir "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY backend backend
COPY dashboard dashboard
COPY assets assets
RUN pip install --no-cache-dir -e ".[deploy]"
ENV DEEPSCOPE_DATA_DIR=/data
EXPOSE 8050
CMD ["deepscope", "serve", "--host", "0.0.0.0"]
