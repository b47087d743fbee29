# webrtc-signal in a container: docker build -t webrtc-signal . &&
# docker run -p 9080:9080 -e WEBRTC_SIGNAL_MAX_PEERS=10000 webrtc-signal
# (docs/deploy.md has the rest)

# Build the wheel in a throwaway stage, so the image holds no sources or
# build tools. .dockerignore keeps the build context to the files copied here.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md LICENSE ./
COPY webrtc_signal ./webrtc_signal
COPY twisted ./twisted
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEBRTC_SIGNAL_CONFIG=/etc/webrtc-signal/webrtc-signal.toml
COPY --from=build /wheels /wheels
# The server's options: a file (replace it with a mounted one), and any
# WEBRTC_SIGNAL_<NAME> variable given to `docker run -e` wins over it.
COPY deploy/webrtc-signal.toml /etc/webrtc-signal/webrtc-signal.toml
# Runtime dependencies only (no test or rtc extras); then twistd's plugin
# cache is written while site-packages is still writable.
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin webrtc-signal
USER 10001
EXPOSE 9080
# SIGTERM drains (docker stop -t must exceed drain-timeout + 10 s, for the
# last closes and webhooks: use `docker stop -t 45`, or stop_grace_period:
# 45s in compose).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9080/healthz', timeout=2)"]
CMD ["twistd", "--nodaemon", "--pidfile=", "webrtc-signal"]
