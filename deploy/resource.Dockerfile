# The posts service (a resource server). Build from the repository's root:
#   docker build -f deploy/resource.Dockerfile -t portcullis-resource .
# Settings come from the environment only (PORTCULLIS_*; see .env.example).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY requirements.txt ./
COPY deploy/install.sh deploy/
COPY shared shared
COPY services/resource services/resource
COPY cli cli
RUN bash deploy/install.sh resource /opt/portcullis

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin portcullis
COPY --from=build /opt/portcullis /opt/portcullis
ENV PATH=/opt/portcullis/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTCULLIS_HOST=0.0.0.0 \
    PORTCULLIS_PORT=8001
USER 10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PORTCULLIS_PORT'], timeout=2)"]
ENTRYPOINT ["portcullis"]
CMD ["serve", "resource"]
