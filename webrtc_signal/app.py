"""The twistd plugin: ``twistd -n webrtc-signal [options]``.

The composition root of the standalone server: its options are made from
the settings every layer declares (`SignalingConfig`) and the standalone
server's own (`StandaloneConfig`), each declared once; `makeService` turns
them into a `SignalingService` with or without a cluster node.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn, cast

from twisted.application.service import IService, IServiceCollection
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.web.resource import Resource

from . import __version__
from .config import SignalingConfig, settings
from .protocol.settings import Declared, InvalidSetting, Kind, declared, parse_text
from .server import collector, logs
from .server.fdlimit import FD_MARGIN, connection_budget, raise_open_file_limit
from .server.standalone import (
    MetricsSite,
    StandaloneConfig,
    StartupFailed,
    check_pem_directory,
    check_port_number,
    default_port_description,
    port_number,
    with_default_backlog,
)
from .server.usage import OneLineUsageOptions
from .service import SignalingService

_log = Logger(namespace="webrtc_signal")

STANDALONE = "standalone"


def options() -> Iterator[tuple[str, Declared]]:
    """Every option of the plugin, in the order --help and the README list
    them: where to listen, every layer's settings, then the rest of the
    standalone server's. Each is (its layer, its declaration)."""
    standalone = list(declared(StandaloneConfig))
    yield STANDALONE, standalone[0]
    yield from settings()
    for item in standalone[1:]:
        yield STANDALONE, item


def default_text(item: Declared) -> str:
    """The default as --help and the README show it."""
    if item.spec.shown_default:
        return item.spec.shown_default
    return str(item.default)


def _help(item: Declared) -> str:
    spec = item.spec
    if spec.kind in (Kind.FLAG, Kind.LIST) or not (spec.shown_default or item.default != ""):
        return spec.help
    # Every parameter's default is None to usage.Options, so that what the
    # command line gave is told from what it did not: the default is shown here.
    shown = default_port_description() if item.option == "port" else default_text(item)
    return f"{spec.help} [default: {shown}]"


def _repeatable(name: str) -> Callable[[usage.Options, str], None]:
    def add(self: usage.Options, value: str) -> None:
        self[name].append(value)

    return add


class Options(OneLineUsageOptions):
    synopsis = "[options]"
    longdesc = (
        "WebRTC signaling server for games, wire-compatible with Godot's "
        "webrtc_signaling demo (ws://host:9080 by default)."
    )
    optFlags: ClassVar[list[list[Any]]] = [
        [item.option, item.spec.short, item.spec.help]
        for _, item in options()
        if item.spec.kind is Kind.FLAG
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        [item.option, item.spec.short, None, _help(item)]
        for _, item in options()
        if item.spec.kind not in (Kind.FLAG, Kind.LIST)
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        for _, item in options():
            if item.spec.kind is Kind.LIST:
                self[item.option] = []

    def opt_version(self) -> NoReturn:
        """Print the version of webrtc-signal and exit."""
        print(f"webrtc-signal {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        values: dict[str, dict[str, Any]] = {"signaling": {}, STANDALONE: {}}
        for layer, item in options():
            given = self._given(item)
            if given is not None:
                values[STANDALONE if layer == STANDALONE else "signaling"][item.name] = given
        try:
            self["config"] = SignalingConfig(**values["signaling"])
            self["standalone"] = StandaloneConfig(**values[STANDALONE])
        except InvalidSetting as error:
            raise usage.UsageError(f"--{_option_of(error.setting)} {error.problem}") from None
        self._check_together()
        standalone: StandaloneConfig = self["standalone"]
        self["port"] = standalone.port or default_port_description()
        self["log_format"] = standalone.log_format
        self["log_level"] = logs.parse_level(standalone.log_level)
        self["hooks"] = self._hooks()
        # twistd has installed the reactor (default, or --reactor) by now.
        from twisted.internet import reactor

        self["endpoint"] = _signaling_endpoint(reactor, self["port"])
        self["metrics_endpoint"] = self._metrics_endpoint(reactor)

    def _given(self, item: Declared) -> Any:
        """The value the command line gave ``item`` (None: not given)."""
        spec, raw = item.spec, self[item.option]
        if spec.kind is Kind.FLAG:
            return (not raw if spec.inverted else bool(raw)) if raw else None
        if spec.kind is Kind.LIST:
            return tuple(raw) if raw else None
        if raw is None:
            return None
        if spec.kind is Kind.SECRET_FILE:
            return _read_secret_file(item.option, raw)
        try:
            return parse_text(spec, raw)
        except ValueError as error:
            raise usage.UsageError(f"--{item.option} {error}, not {raw!r}") from None

    def _check_together(self) -> None:
        config: SignalingConfig = self["config"]
        if config.cluster.node_id and not config.cluster.redis_url:
            raise usage.UsageError("--node-id needs --redis")
        if config.cluster.redis_url:
            try:
                import txredisapi  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--redis needs txredisapi: pip install 'webrtc-signal[cluster]'"
                ) from None
        if (
            self["standalone"].log_format == "json"
            and self.parent is not None
            and self.parent.get("syslog")
        ):
            raise usage.UsageError(
                "--log-format json writes lines to stdout or twistd's --logfile, not to --syslog"
            )

    def _hooks(self) -> Any:
        standalone: StandaloneConfig = self["standalone"]
        self["companions"] = []
        if not standalone.token_secret:
            return None
        from .server.tokens import TokenAuth

        used_tokens = None
        redis_url = self["config"].cluster.redis_url
        if redis_url:
            # Single-use tokens are single-use across the cluster.
            from .cluster.used_tokens import RedisUsedTokens

            used_tokens = RedisUsedTokens(redis_url)
            self["companions"].append(used_tokens)
        return TokenAuth(
            standalone.token_secret.encode("utf-8"),
            max_ttl=standalone.token_max_ttl,
            used_tokens=used_tokens,
        )

    def _metrics_endpoint(self, reactor: Any) -> IStreamServerEndpoint | None:
        standalone: StandaloneConfig = self["standalone"]
        description = standalone.metrics
        if not description:
            return None
        try:
            check_port_number(description)
            endpoint = endpoints.serverFromString(reactor, description)
        except Exception as error:
            raise usage.UsageError(f"--metrics {description!r} is not usable: {error}") from None
        port = port_number(description)
        signaling_port = port_number(standalone.port or default_port_description())
        if port is not None and port != 0 and port == signaling_port:
            # Players must never reach the metrics, nor the metrics take their port.
            raise usage.UsageError(
                f"--metrics {description!r} is the signaling port (--port {standalone.port!r}); "
                "give the metrics a port of their own"
            )
        return cast(IStreamServerEndpoint, endpoint)


# The repeatable options: usage.Options calls opt_<name> for each time one is
# given, and prints its docstring as its help.
for _, _item in options():
    if _item.spec.kind is Kind.LIST:
        _method = _repeatable(_item.option)
        _method.__doc__ = _item.spec.help
        setattr(Options, f"opt_{_item.option.replace('-', '_')}", _method)


def _option_of(field: str) -> str:
    for _, item in options():
        if item.name == field:
            return item.option
    return field.replace("_", "-")


def _read_secret_file(option: str, path: str) -> str:
    """The text of a secret file, stripped; a usage error naming ``option``."""
    try:
        secret = Path(path).read_bytes().decode("utf-8").strip()
    except OSError as error:
        raise usage.UsageError(f"--{option} {path!r} cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise usage.UsageError(f"--{option} {path!r} is not UTF-8 text") from None
    if not secret:
        raise usage.UsageError(f"--{option} {path!r} is empty")
    return secret


def _signaling_endpoint(reactor: Any, port: str) -> IStreamServerEndpoint:
    default = default_port_description()
    description = port or default
    try:
        check_port_number(description)
        check_pem_directory(description)
        endpoint = endpoints.serverFromString(reactor, with_default_backlog(description, default))
    # Parsers raise all kinds of errors; each one means a bad --port.
    except Exception as error:
        raise usage.UsageError(f"--port {description!r} is not usable: {error}") from None
    return cast(IStreamServerEndpoint, endpoint)


class StandaloneService(SignalingService):
    """Under twistd, a port that cannot be opened ends the program with one
    clear line instead of a traceback (see `StartupFailed`). twistd opens the
    port in privilegedStartService, before it drops root for --uid/--gid.
    The service also brings the log observer (``--log-format``,
    ``--log-level``), makes a second SIGTERM end a drain, and serves the
    metrics (``--metrics``) on a port of their own."""

    def __init__(
        self,
        description: str,
        *args: Any,
        log_observer: ILogObserver | None = None,
        metrics: tuple[str, IStreamServerEndpoint] | None = None,
        companions: list[IService] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.description = description
        # Services that live and die with this one (a Redis store of used tokens).
        self.companions = companions or []
        self.log_observer = log_observer
        self._signals_before: dict[int, Any] = {}
        # The metrics' port: opened and closed by this service rather than by
        # a MultiService, so that it stays up through a drain (the drain
        # itself can be watched) and closes only once the clients are gone.
        self.metrics_endpoint: IStreamServerEndpoint | None = None
        self.metrics_description = ""
        self.metrics_port: IListeningPort | None = None
        if metrics is not None:
            self.metrics_description, self.metrics_endpoint = metrics

    def setServiceParent(self, parent: IServiceCollection) -> None:
        # twistd adds the plugin's service to a fresh Application, then starts
        # logging with the application's ILogObserver component if it has one
        # (its own --logger still comes first): the supported place for ours.
        if (
            self.log_observer is not None
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None  # type: ignore[no-untyped-call]
        ):
            parent.setComponent(ILogObserver, self.log_observer)  # type: ignore[no-untyped-call]
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]

    def privilegedStartService(self) -> None:
        # Before listening, and while still root under --uid, which may raise
        # the hard limit too.
        self._fit_open_file_limit()
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            raise StartupFailed(
                f"cannot listen on {self.description}: {error.socketError}"
            ) from None
        self._start_metrics()

    def startService(self) -> None:
        for companion in self.companions:
            companion.startService()
        super().startService()
        self._start_metrics()
        # The process is the server's alone: its collector is tuned for it.
        from twisted.internet import reactor

        reactor.callWhenRunning(collector.settle_after_start)

    def _start_metrics(self) -> None:
        endpoint = self.metrics_endpoint
        if endpoint is None or self.metrics_port is not None:
            return
        root = Resource()
        root.putChild(b"metrics", self.metrics_resource())
        waiting = endpoint.listen(MetricsSite(root))  # type: ignore[no-untyped-call]
        failure = _failed_at_once(waiting)
        if failure is not None:
            problem = getattr(failure.value, "socketError", failure.getErrorMessage())
            raise StartupFailed(
                f"cannot listen on {self.metrics_description} (--metrics): {problem}"
            )
        waiting.addCallbacks(self._metrics_listening, self._metrics_failed)

    def _metrics_failed(self, failure: Any) -> None:
        _log.failure(
            "cannot serve the metrics on {description}",
            failure,
            description=self.metrics_description,
        )

    def _metrics_listening(self, port: IListeningPort) -> IListeningPort:
        self.metrics_port = port
        address = port.getHost()
        _log.info(
            "serving metrics at /metrics on {host} port {port}",
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", None),
        )
        return port

    def _fit_open_file_limit(self) -> None:
        """Make room for --max-peers connections, or say why there is none,
        and refuse (503) what does not fit rather than fail at accept()."""
        max_peers = self.config.core.max_peers
        needed = max_peers + FD_MARGIN
        soft, hard = raise_open_file_limit(needed)
        if soft < needed:
            _log.warn(
                "the open-file limit is {soft} (hard limit {hard}), below the {needed} "
                "that --max-peers {max_peers} needs: connections beyond {budget} get "
                "HTTP 503; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                "--max-peers",
                soft=soft,
                hard=hard,
                needed=needed,
                max_peers=max_peers,
                budget=connection_budget(soft),
            )
        self.admission.max_connections = connection_budget(soft)

    def stopService(self) -> Deferred[None]:
        stopping = super().stopService()
        drain = self.drain
        if drain is not None:
            # The reactor's handlers would only try to stop it again: while
            # the drain lasts, SIGTERM and SIGINT end it instead.
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._signals_before[signum] = signal.signal(signum, self._end_drain_on_signal)
            drain.ended.addBoth(self._restore_signals)
        port = self.metrics_port
        if port is not None:
            self.metrics_port = None
            stopping.addCallback(lambda _: port.stopListening())
        for companion in self.companions:
            stopping.addCallback(_then_stop, companion)
        return stopping

    def _end_drain_on_signal(self, signum: int, frame: object) -> None:
        from twisted.internet import reactor

        _log.info("received signal {signal} while draining: ending the drain", signal=signum)
        # Out of the signal handler, into the reactor's loop.
        reactor.callFromThread(self.end_drain)  # type: ignore[attr-defined]

    def _restore_signals(self, result: object) -> object:
        while self._signals_before:
            signum, handler = self._signals_before.popitem()
            signal.signal(signum, handler)
        return result


def _then_stop(result: object, service: IService) -> Any:
    return service.stopService()


def _failed_at_once(waiting: Deferred[Any]) -> Any:
    """The failure ``waiting`` already holds, taken out of it (None if none)."""
    failures: list[Any] = []
    if waiting.called:
        waiting.addErrback(failures.append)
    return failures[0] if failures else None


def makeService(options: Options) -> IService:
    parent = options.parent
    standalone: StandaloneConfig = options["standalone"]
    level = logs.parse_level(standalone.log_level)
    logs.set_level(level)
    observer = logs.make_observer(
        standalone.log_format, level, dict(parent) if parent is not None else None
    )
    metrics_endpoint = options.get("metrics_endpoint")
    return StandaloneService(
        standalone.port or default_port_description(),
        options["config"],
        options["endpoint"],
        log_observer=observer,
        hooks=options.get("hooks"),
        metrics=(standalone.metrics, metrics_endpoint) if metrics_endpoint is not None else None,
        companions=options.get("companions"),
    )
