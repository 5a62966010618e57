# Hallmark HTTP service. Debian slim (glibc: the c2pa-python wheels need it), Python 3.11, non-root.
#
# The image holds no keys, no trust anchors and no database: everything stateful lives in /data
# (HALLMARK_DATA_DIR), mounted at run time. Layout of /data: see keys.example/README.md.
#
#   make wheel && docker build -t hallmark .     # the image installs dist/*.whl, built by `make wheel`
#
#   # Host side, once: the data dir must be writable by the container user (uid 10001: SQLite database),
#   # the private key readable by it and by nobody else (Hallmark refuses a key file with group/other bits).
#   #   /srv/hallmark/keys/signing-chain.pem   chain from your CA, leaf first
#   #   /srv/hallmark/keys/signing-key.pem     PKCS#8 private key, mode 0600
#   #   /srv/hallmark/trust/<profile>.pem      trust anchors (your CA's root, the C2PA trust list)
#   sudo chown -R 10001:10001 /srv/hallmark && sudo chmod 600 /srv/hallmark/keys/signing-key.pem
#
#   docker run -d --name hallmark -p 8000:8000 \
#     -e HALLMARK_ENV=production \
#     -v /srv/hallmark:/data \
#     hallmark
#
#   # Or keep the credentials on a separate read-only mount and point at them explicitly:
#   docker run -d --name hallmark -p 8000:8000 \
#     -e HALLMARK_ENV=production \
#     -v /srv/hallmark-db:/data \
#     -v /etc/hallmark:/credentials:ro \
#     -e HALLMARK_SIGNING_CHAIN=/credentials/signing-chain.pem \
#     -e HALLMARK_SIGNING_KEY=/credentials/signing-key.pem \
#     -e HALLMARK_TRUST_DIR=/credentials/trust \
#     hallmark
#
#   # Create an API key (shown once) in the same data dir:
#   docker exec hallmark hallmark apikey create --name my-app --scope sign
#
# With HALLMARK_ENV=production the service refuses development keys and trust and needs at least one trust
# profile; each worker signs a test image at start-up and exits with the reason if the key cannot sign.
# With --read-only, also mount a tmpfs at /tmp (large uploads and outputs spool there).
# One worker per core (the engine scales with processes), and tell them how many they are (HALLMARK_WORKERS
# shares the cores' verification slots among them), e.g. for 2 cores:
#   docker run -e HALLMARK_WORKERS=2 ... hallmark uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --workers 2

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HALLMARK_DATA_DIR=/data

# The audio/video soft binding (ISCC Audio/Video codes) runs Debian's fpcalc and ffmpeg; without them sign
# still works and says `Hallmark-ISCC: none; reason=...`. Versions are bookworm's, as the tests ran them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg=7:5.1.9-0+deb12u1 libchromaprint-tools=1.5.1-2+b1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 hallmark \
    && useradd --system --uid 10001 --gid hallmark --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hallmark \
    && mkdir -p /data \
    && chown hallmark:hallmark /data

# The wheel `make wheel` builds, the very one the test suite checks, with the dependency versions of the
# environment the tests ran in (dist/constraints.txt); nothing is built from a source tree here.
COPY dist/hallmark-0.1.0-py3-none-any.whl dist/constraints.txt /tmp/dist/
RUN pip install --no-cache-dir --constraint /tmp/dist/constraints.txt /tmp/dist/hallmark-0.1.0-py3-none-any.whl \
    && rm -rf /tmp/dist

# An empty working directory: the code is imported from site-packages, never from a source tree.
WORKDIR /srv/hallmark
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
