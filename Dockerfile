# Production image: one image, every process (web, stream, workers, beat) chooses its command.
FROM node:20-bookworm-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TRADESITE_VAR_DIR=/app/var
WORKDIR /app
RUN useradd --create-home --uid 1000 tradesite
COPY requirements.txt ./
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.txt
COPY --from=frontend /app/node_modules ./node_modules
COPY . .
# The strategy kernels compiled ahead of time (numba's pycc) and the SQLite candle reader (cffi):
# a C compiler is needed only to build them and is removed in the same layer. Without them
# processes fall back to numba's JIT and to the sqlite3 module.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev libsqlite3-dev >/dev/null \
    && /app/.venv/bin/python -m strategies.aot \
    && /app/.venv/bin/python -m markets.sqlite_columns_build \
    && apt-get purge -y -qq gcc libc6-dev libsqlite3-dev >/dev/null && apt-get autoremove -y -qq >/dev/null \
    && rm -rf /var/lib/apt/lists/*
# collectstatic needs settings; these throwaway values never reach a running container.
RUN SECRET_KEY=build FIELD_ENCRYPTION_KEY=$(/app/.venv/bin/python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    /app/.venv/bin/python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown -R tradesite /app/var
USER tradesite
ENV PATH=/app/.venv/bin:$PATH
EXPOSE 8000
CMD ["python", "-m", "tradesite.web", "--host", "0.0.0.0", "--port", "8000"]
