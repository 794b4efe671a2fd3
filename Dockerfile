# Local Lattice in a container: non-root, health-checked, extras chosen at build time.
#   docker build --build-arg EXTRAS=demo -t local-lattice .
#   docker run -p 5001:5001 -e MIDDLE_LAYER_API_KEY=change-me local-lattice
FROM python:3.11-slim

# Comma-separated extras of the package, e.g. "anthropic,otel" or "demo" (empty: the gateway alone).
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=5001

# llama-cpp-python (extras demo, llamacpp) compiles llama.cpp: only then are compilers installed.
RUN case ",${EXTRAS}," in \
      *,demo,*|*,llamacpp,*|*,all,*) apt-get update \
        && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac

RUN useradd --create-home --uid 10001 lattice
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".${EXTRAS:+[${EXTRAS}]}"

USER lattice
EXPOSE 5001
# Binding 0.0.0.0 needs a key: set MIDDLE_LAYER_API_KEY (or server.api_keys in a mounted config).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"5001\")}/healthz', timeout=4)"
ENTRYPOINT ["lattice", "serve"]
