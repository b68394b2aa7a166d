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
# Layer order: the dependencies are installed into a venv against an empty package skeleton (cached until
# pyproject.toml changes); each runtime image copies that venv and then installs the project wheel on top,
# so a change to the sources rebuilds only the wheel and one small layer, never the TensorFlow install.
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


# ---- build stages (never shipped) -------------------------------------------------------------------

FROM base AS skeleton
WORKDIR /src
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
    && mkdir movierec app training \
    && touch movierec/__init__.py app/__init__.py training/__init__.py

# The project itself as a wheel, built once and installed into every runtime image below.
FROM skeleton AS wheel
COPY pyproject.toml README.md* ./
COPY movierec/ movierec/
COPY app/ app/
COPY training/ training/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

FROM skeleton AS deps-serve
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/src[serve]"

FROM skeleton AS deps-train
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/src[train]"

FROM skeleton AS deps-train-gpu
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/src[train-gpu]"

FROM skeleton AS deps-serve-gpu
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/src[serve,train-gpu]"


# ---- runtime stages ---------------------------------------------------------------------------------

# Keras/matplotlib want a writable home for their config; the user's home is /home/movierec.
FROM base AS trainer
COPY --from=deps-train /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --force-reinstall /wheels/*.whl
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    MOVIEREC_DATA_ROOT=/data
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

FROM base AS trainer-gpu
COPY --from=deps-train-gpu /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --force-reinstall /wheels/*.whl
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    MOVIEREC_DATA_ROOT=/data
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

# The service's settings come from MOVIEREC_* variables (see .env.example); PORT and WORKERS feed uvicorn,
# which also honours any UVICORN_* variable (e.g. UVICORN_LOG_LEVEL). The health probe is stdlib-only.
FROM base AS api-gpu
COPY --from=deps-serve-gpu /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --force-reinstall /wheels/*.whl
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    PORT=8000 \
    WORKERS=1 \
    MOVIEREC_MODEL_DIR=/models/latest
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port \"${PORT}\" --workers \"${WORKERS}\""]

FROM base AS api
COPY --from=deps-serve /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --force-reinstall /wheels/*.whl
WORKDIR /app
USER 10001:10001
ENV HOME=/home/movierec \
    PORT=8000 \
    WORKERS=1 \
    MOVIEREC_MODEL_DIR=/models/latest
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
CMD ["sh", "-c", "exec uvicorn app.main:app --host 0.0.0.0 --port \"${PORT}\" --workers \"${WORKERS}\""]
