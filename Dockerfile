# Image of the dashboard, trainer and analysis services of docker-compose.yml (each runs its own command;
# the `deploy` extra brings gunicorn, redis and psycopg2; `deepscope health` is their health check).
FROM python:3.11-slim
WORKDIR /app
# CUDA build of torch from PyPI inside the image (the GPU trainer needs it).
RUN pip install --no-cache-dir "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY backend backend
COPY dashboard dashboard
COPY assets assets
COPY deepscope deepscope
RUN pip install --no-cache-dir -e ".[deploy]"
ENV DEEPSCOPE_DATA_DIR=/data
# Log lines reach `docker compose logs` as they are written.
ENV PYTHONUNBUFFERED=1
EXPOSE 8050
# Reachable from outside the container, so sign-in is on: mount an accounts file at
# /run/secrets/deepscope_auth (`deepscope auth add NAME --role operator --auth-file auth.json`).
ENV DEEPSCOPE_AUTH_FILE=/run/secrets/deepscope_auth
CMD ["deepscope", "serve", "--host", "0.0.0.0", "--auth"]
