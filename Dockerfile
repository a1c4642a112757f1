# The xlir project image: Airflow 3 (scheduler, dag-processor, triggerer, api-server, Celery
# workers) with xlir and its locked dependencies, the DAGs and plugins baked in, and (by default)
# the datasets and the bundled encoder fetched at build time, pinned and sha256-checked.
#
#   docker compose build                                  # CPU torch (the lock's build)
#   docker compose -f docker-compose.yaml -f docker-compose.gpu.yaml build   # CUDA torch for the training queue
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm
FROM ${PYTHON_IMAGE}

# torch's build: the lock pins the CPU wheel (+cpu); TORCH_VARIANT=cu128 (say) swaps it for the CUDA
# wheel of the same version from the PyTorch index.
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow XLIR_CACHE_DIR=/opt/xlir/cache TOKENIZERS_PARALLELISM=false

RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow
WORKDIR /opt/xlir
COPY requirements-lock.txt ./
RUN sed -i "s/^torch==\([^+]*\)+cpu$/torch==\1+${TORCH_VARIANT}/" requirements-lock.txt \
    && pip install --extra-index-url "${TORCH_INDEX}/${TORCH_VARIANT}" -r requirements-lock.txt \
    && pip check
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps --no-build-isolation . && rm -rf build src/*.egg-info
COPY dags ./dags
COPY plugins ./plugins
RUN mkdir -p /opt/xlir/data /opt/xlir/cache /opt/airflow/logs /opt/airflow/secrets \
    && chown -R 50000:0 /opt/xlir /opt/airflow && chmod -R g+rwX /opt/xlir /opt/airflow
USER 50000

# Data and the bundled encoder in the image (XLIR_PREFETCH=0 to mount them instead: XLIR_DATA_DIR).
ARG XLIR_PREFETCH=1
RUN if [ "${XLIR_PREFETCH}" = "1" ]; then xlir data fetch && xlir model prepare bundled:multilingual-e5-small; fi

ENTRYPOINT ["airflow"]
CMD ["version"]
