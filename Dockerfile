# Panorama's container image (BuildKit, the default builder since Docker 23).
#
#   docker build -t panorama .
#   docker run --rm -v panorama-data:/var/lib/panorama/data panorama migrate     # once per release
#   docker run -d -p 8000:8000 -v panorama-data:/var/lib/panorama/data panorama  # serve
#
# Two stages: the first builds Panorama's wheel and the wheels of its runtime dependencies
# (versions pinned by constraints.txt); the second installs them into a clean virtualenv
# on a slim Python 3.11, with no compiler, no build tool and no dev extra.
# At run time the only writable path is /var/lib/panorama/data (SQLite file, generated admin
# token): the image works with a read-only root filesystem (the Helm chart sets one).
# tests/deploy/test_image_contents.py proves the final stage's contents without a Docker
# daemon: the same wheel, a fresh virtualenv, this USER, a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --disable-pip-version-check --constraint constraints.txt \
        --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG UID=10001
ENV PATH=/opt/panorama/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid ${UID} panorama \
    && useradd --system --uid ${UID} --gid ${UID} --no-create-home \
        --home-dir /var/lib/panorama --shell /usr/sbin/nologin panorama
# The wheels are mounted from the build stage, not copied: no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/panorama \
    && pip --python /opt/panorama/bin/python install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels /wheels/panorama-*.whl \
    && mkdir -p /var/lib/panorama/data \
    && chown ${UID}:${UID} /var/lib/panorama/data \
    && chmod 0750 /var/lib/panorama/data
# ./data (the default data_dir and SQLite location) is the data directory.
WORKDIR /var/lib/panorama
USER ${UID}:${UID}
EXPOSE 8000
# The slim image has no curl: Python itself asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["panorama"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
