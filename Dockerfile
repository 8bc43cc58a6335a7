# lp-harness: the load generator's image (a Locust master, worker or headless run; the emulator too).
#
#   docker build -t lp-harness:0.1.0 .
#   docker run --rm lp-harness:0.1.0                                   # the main job: smoke run on the embedded emulator
#   docker run --rm -p 127.0.0.1:8089:8089 lp-harness:0.1.0 --web-host 0.0.0.0   # web UI, on this host's loopback only
#   docker run --rm -e LP_ACCOUNT=... -e LP_IDP=... -e LP_ASYNCMESSAGINGENT=... lp-harness:0.1.0 --config scenarios/load.conf
#   docker run ... lp-harness:0.1.0 --master | --worker --master-host HOST # distributed (docs/scale-out.md)
#   docker run --rm --entrypoint lp-harness lp-harness:0.1.0 emulator --host 0.0.0.0 --port 8080
#
# Arguments after the image name go to `locust -f locustfile.py` (the default runs scenarios/smoke.conf).
# Open files: every held session is one socket, so a process holds at most its open-file limit of sessions
# (docs/sizing.md). The entrypoint raises the soft limit to the hard one; give the container a high hard limit
# (`docker run --ulimit nofile=65536:65536`; Kubernetes takes the container runtime's, see `ulimit -Hn` in a pod).
FROM python:3.11-slim

LABEL org.opencontainers.image.title="lp-harness" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Load and soak testing for LivePerson consumer messaging, on Locust"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 10001 locust && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin locust

WORKDIR /app
COPY . /app
# The README's install step, as is.
RUN pip install .
# Reports are written under /app/reports (--lp-reports-dir): the one folder the harness writes.
RUN mkdir -p /app/reports && chown locust:locust /app/reports

USER 10001:10001
# 8089 the web UI, 5557 the master's port for workers, 9646 the master's /metrics (--lp-prometheus-port).
EXPOSE 8089 5557 9646

ENTRYPOINT ["/bin/sh", "-c", "ulimit -n \"$(ulimit -Hn)\" 2>/dev/null || true; exec locust -f locustfile.py \"$@\"", "locust"]
CMD ["--config", "scenarios/smoke.conf"]
