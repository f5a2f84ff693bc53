# leadline worker image: `docker build -t leadline .`, `docker run leadline worker`.
# Build stage: install the project into a virtualenv (compilers available for any
# dependency without a wheel); runtime stage: that virtualenv only, as a non-root user.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
RUN pip install .


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEADLINE_WEB_HOST=0.0.0.0 \
    LEADLINE_DATA_DIR=/var/lib/leadline

RUN groupadd --system --gid 10001 leadline \
    && useradd --system --uid 10001 --gid leadline --home-dir /var/lib/leadline \
       --shell /usr/sbin/nologin leadline \
    && mkdir -p /var/lib/leadline \
    && chown leadline:leadline /var/lib/leadline

COPY --from=build /opt/venv /opt/venv

USER leadline
WORKDIR /var/lib/leadline
EXPOSE 6066
ENTRYPOINT ["leadline"]
CMD ["worker"]
