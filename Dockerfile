# One image for web, worker and beat.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SCS_ENVIRONMENT=production SCS_DATA_DIR=/var/lib/scs
WORKDIR /app
COPY requirements/base.lock requirements/base.lock
RUN pip install --no-cache-dir --require-hashes -r requirements/base.lock \
    && useradd --system --home /var/lib/scs scs && mkdir -p /var/lib/scs && chown scs /var/lib/scs
COPY . .
RUN SECRET_KEY=build SCS_IDENTIFIER_ENCRYPTION_KEY=ZGV2ZWxvcG1lbnQtb25seS1lbmNyeXB0aW9uLWtleSE= \
    SCS_IDENTIFIER_HASH_KEY=ZGV2ZWxvcG1lbnQtb25seS1ibGluZC1pbmRleC1rZXk= \
    SCS_AUDIT_SIGNING_KEY=ZGV2ZWxvcG1lbnQtb25seS1hdWRpdC1zaWduaW5nISE= \
    SCS_AUDIT_SEAL_KEY=ZGV2ZWxvcG1lbnQtb25seS1hdWRpdC1zZWFsLWtleSEhIQ== \
    python manage.py collectstatic --noinput
USER scs
EXPOSE 8000
CMD ["gunicorn", "scs_cases.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
