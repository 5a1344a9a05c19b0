# syntax=docker/dockerfile:1
# Build stage: resolve and build wheels for the app and its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip wheel
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY workers ./workers
COPY bench ./bench
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[trees]'

# Runtime stage: only the installed wheels, run as an unprivileged user.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system stageflow && useradd --system --gid stageflow --home-dir /app stageflow
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=stageflow:stageflow alembic.ini ./
USER stageflow
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# DATABASE_URL and REDIS_URL come from the environment; run `stageflow migrate` as a release step.
# `serve` runs uvicorn (httptools, uvloop): granian measured no faster (issue 10), so it is not in the image.
CMD ["stageflow", "serve", "--host", "0.0.0.0", "--port", "8000"]
