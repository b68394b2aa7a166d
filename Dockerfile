# syntax=docker/dockerfile:1
#
# movierec images, one Dockerfile, four targets:
#
#   api          (default, last stage)  FastAPI service, `.[serve]` only: it scores from the exported numpy
#                                       arrays of a bundle and never imports Keras/TensorFlow, so it needs no
#                                       GPU and no TensorFlow. Most deployments want this one.
#   api-gpu                             the service with `.[serve,train-gpu]` for MOVIEREC_DEVICE=gpu|auto
#                                       scoring on an NVIDIA GPU (large: CUDA wheels).
#   trainer                             `python -m training ...` with `.[train]` (tensorflow-cpu).
#   trainer-gpu                         `python -m training ...` with `.[train-gpu]` (tensorflow[and-cuda]).
#
#   docker build -t movierec-api .                          docker build --target trainer -t movierec-trainer .
#
# Layer order: each runtime image starts from a stage whose venv (/opt/venv) holds only the dependencies,
# installed against an empty package skeleton, so it stays cached until pyproject.toml changes; the project
# wheel goes on top, so a change to the sources rebuilds one small layer, never the TensorFlow install.
# (The wheel arrives by COPY, not a bind mount: buildah's layer cache ignores the content of bind mounts.)
# Every image runs as the numeric user 10001:10001 and owns /data and /models, so fresh named volumes
# mounted there are writable by the trainer.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid 10001 movierec \
    && useradd --uid 10001 --gid 10001 --home-dir /home/movierec --create-home \
        --shell /usr/sbin/nologin movierec \
    && mkdir -p /app /data /models \
    && chown 10001:10001 /data /models


# ---- dependency and build stages ---------------------------------------------------------------------

# The project itself as a wheel, built once and installed into every runtime image below.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY movierec/ movierec/
COPY app/ app/
COPY training/ training/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

# Dependencies only, one venv per extra; the skeleton lets pip resolve the extras from pyproject.toml.
FROM base AS deps-serve
COPY pyproject.toml /tmp/skeleton/
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir /tmp/skeleton/movierec /tmp/skeleton/app /tmp/skeleton/training \
    && touch /tmp/skeleton/movierec/__init__.py /tmp/skeleton/app/__init__.py /tmp/skeleton/training/__init__.py \
    && python -m venv /opt/venv \
    && pip install "/tmp/skeleton[serve]" \
    && pip uninstall --yes movierec \
    && rm -rf /tmp/skeleton

FROM base AS deps-train
COPY pyproject.toml /tmp/skeleton/
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir /tmp/skeleton/movierec /tmp/skeleton/app /tmp/skeleton/training \
    && touch /tmp/skeleton/movierec/__init__.py /tmp/skeleton/app/__init__.py /tmp/skeleton/training/__init__.py \
    && python -m venv /opt/venv \
    && pip install "/tmp/skeleton[train]" \
    && pip uninstall --yes movierec \
    && rm -rf /tmp/skeleton

FROM base AS deps-train-gpu
COPY pyproject.toml /tmp/skeleton/
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir /tmp/skeleton/movierec /tmp/skeleton/app /tmp/skeleton/training \
    && touch /tmp/skeleton/movierec/__init__.py /tmp/skeleton/app/__init__.py /tmp/skeleton/training/__init__.py \
    && python -m venv /opt/venv \
    && pip install "/tmp/skeleton[train-gpu]" \
    && pip uninstall --yes movierec \
    && rm -rf /tmp/skeleton

FROM base AS deps-serve-gpu
COPY pyproject.toml /tmp/skeleton/
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir /tmp/skeleton/movierec /tmp/skeleton/app /tmp/skeleton/training \
    && touch /tmp/skeleton/movierec/__init__.py /tmp/skeleton/app/__init__.py /tmp/skeleton/training/__init__.py \
    && python -m venv /opt/venv \
    && pip install "/tmp/skeleton[serve,train-gpu]" \
    && pip uninstall --yes movierec \
    && rm -rf /tmp/skeleton


# ---- runtime stages ---------------------------------------------------------------------------------

# Keras/matplotlib want a writable home for their config; the user's home is /home/movierec.
FROM deps-train AS trainer
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    MOVIEREC_DATA_ROOT=/data \
    MOVIEREC_OUTPUT_DIR=/models
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

FROM deps-train-gpu AS trainer-gpu
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    MOVIEREC_DATA_ROOT=/data \
    MOVIEREC_OUTPUT_DIR=/models
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

# The service's settings come from MOVIEREC_* variables (see .env.example); PORT and WORKERS feed uvicorn,
# which also honours any UVICORN_* variable (e.g. UVICORN_LOG_LEVEL). UVICORN_LOOP=asyncio: under uvloop a
# saturated worker leaves some connections unanswered for hundreds of ms (bench/results/list_cache.md).
# The health probe is stdlib-only.
FROM deps-serve-gpu AS api-gpu
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    PORT=8000 \
    WORKERS=1 \
    UVICORN_LOOP=asyncio \
    MOVIEREC_MODEL_DIR=/models/latest
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port \"${PORT}\" --workers \"${WORKERS}\""]

FROM deps-serve AS api
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    PORT=8000 \
    WORKERS=1 \
    UVICORN_LOOP=asyncio \
    MOVIEREC_MODEL_DIR=/models/latest
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port \"${PORT}\" --workers \"${WORKERS}\""]
