"""The twistd plugin: ``twistd -n webrtc-signal [options]``.

The composition root of the standalone server: its options are made from
the settings every layer declares (`SignalingConfig`) and the standalone
server's own (`StandaloneConfig`), each declared once; `makeService` turns
them into a `SignalingService` with or without a cluster node.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NoReturn, cast

from twisted.application.service import IService, IServiceCollection, Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.web.resource import Resource
from twisted.web.server import Site

from . import __version__
from .config import SignalingConfig, settings
from .protocol.settings import Declared, InvalidSetting, Kind, Source, declared, parse_text
from .server import _internals, collector, logs
from .server.fdlimit import FD_MARGIN, connection_budget, raise_open_file_limit
from .server.option_sources import (
    Given,
    configuration_text,
    from_environment,
    from_file,
    read_file,
    resolve,
    setting_value,
)
from .server.port_file import PortFile, PortFileError
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

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # twistd makes the options without arguments: the process's environment.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        # Each option's value and where it came from, once parsed.
        self.given: dict[str, Given] = {}
        for _, item in options():
            if item.spec.kind is Kind.LIST:
                self[item.option] = []

    def opt_version(self) -> NoReturn:
        """Print the version of webrtc-signal and exit."""
        print(f"webrtc-signal {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        self.given = self._resolve()
        self._make_configs()
        self._check_together()
        self._check_backends()
        standalone: StandaloneConfig = self["standalone"]
        self["port"] = standalone.port or default_port_description()
        self["log_format"] = standalone.log_format
        self["log_level"] = logs.parse_level(standalone.log_level)
        # twistd has installed the reactor (default, or --reactor) by now.
        from twisted.internet import reactor

        self["endpoint"] = _signaling_endpoint(reactor, self["port"], self.given["port"])
        self["metrics_endpoint"] = self._side_endpoint(
            reactor, "metrics", "the metrics a port of their own"
        )
        self["admin_endpoint"] = self._side_endpoint(
            reactor, "admin", "the admin API a port of its own"
        )
        if standalone.print_config:
            self._print_config()
        self["hooks"] = self._hooks()

    # -- where each option comes from ---------------------------------------------

    def _resolve(self) -> dict[str, Given]:
        """Every option's value: from the command line, else the environment,
        else the --config file, else its default."""
        items = [item for _, item in options()]
        command_line = {}
        for item in items:
            given = self._given(item)
            if given is not None:
                command_line[item.option] = given
        environment = from_environment(items, self.environ)
        config = command_line.get("config") or environment.get("config")
        in_file: dict[str, Given] = {}
        if config is not None and config.value:
            in_file = from_file(items, read_file(config), config.value)
        return resolve(items, command_line, environment, in_file)

    def _given(self, item: Declared) -> Given | None:
        """The value the command line gave ``item`` (None: not given)."""
        spec, raw = item.spec, self[item.option]
        if spec.kind is Kind.FLAG:
            value: Any = True if raw else None
        elif spec.kind is Kind.LIST:
            value = tuple(raw) if raw else None
        elif raw is None or spec.kind is Kind.SECRET_FILE:
            value = raw
        else:
            try:
                value = parse_text(spec, raw)
            except ValueError as error:
                raise usage.UsageError(f"--{item.option} {error}, not {raw!r}") from None
        return None if value is None else Given(value, Source.COMMAND_LINE)

    def _make_configs(self) -> None:
        values: dict[str, dict[str, Any]] = {"signaling": {}, STANDALONE: {}}
        for layer, item in options():
            given = self.given[item.option]
            if given.source is not Source.DEFAULT:
                value = setting_value(item, given)
                values[STANDALONE if layer == STANDALONE else "signaling"][item.name] = value
        try:
            # The --config option's key holds the configuration from now on.
            self["config"] = SignalingConfig(**values["signaling"])
            self["standalone"] = StandaloneConfig(**values[STANDALONE])
        except InvalidSetting as error:
            option = _option_of(error.setting)
            given = self.given.get(option, Given(None, Source.DEFAULT))
            raise usage.UsageError(given.problem(option, error.problem)) from None

    def _print_config(self) -> NoReturn:
        """--print-config: the configuration these options make, as TOML."""
        shown = dict(self.given)
        if shown["port"].source is Source.DEFAULT:
            shown["port"] = Given(self["port"], Source.DEFAULT)
        header = [
            f"webrtc-signal {__version__}: the effective configuration, as --config reads it.",
            "After each value, where it came from: the command line, the environment",
            "(WEBRTC_SIGNAL_<NAME>), a file (--config) or the default. Secret files are",
            "shown by their paths; a Redis URL as <secret>.",
        ]
        config = shown["config"]
        if config.value:
            header.append(f"Read {config.value} ({config.origin}).")
        sys.stdout.write(configuration_text([item for _, item in options()], shown, header))
        sys.stdout.flush()
        sys.exit(0)

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
        """Token auth, the auth callback, or both (each must pass)."""
        self["companions"] = []
        token_auth = self["token_auth"] = self._token_auth()
        callback = self._auth_callback()
        if callback is None:
            return token_auth
        self["companions"].append(StopsWith(callback.close))
        if token_auth is None:
            return callback
        from .server.combined_hooks import RequireAll

        # Token auth first: a bad token is refused before the backend is asked.
        return RequireAll(token_auth, callback)

    def _auth_callback(self) -> Any:
        standalone: StandaloneConfig = self["standalone"]
        if not standalone.auth_url:
            return None
        from .server.auth_callback import AuthCallback

        return AuthCallback(
            standalone.auth_url,
            timeout=standalone.auth_timeout,
            concurrency=standalone.auth_concurrency,
        )

    def _token_auth(self) -> Any:
        standalone: StandaloneConfig = self["standalone"]
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

    # -- the backends' options and ports of their own -------------------------------

    def _check_backends(self) -> None:
        """Options that only work in pairs."""
        standalone: StandaloneConfig = self["standalone"]
        pairs = (
            ("admin", bool(standalone.admin), "admin-token-file", bool(standalone.admin_token)),
            (
                "webhook",
                bool(standalone.webhook_urls),
                "webhook-secret-file",
                bool(standalone.webhook_secret),
            ),
        )
        for option, given, needed, needed_given in pairs:
            if given and not needed_given:
                raise usage.UsageError(f"--{option} needs --{needed}")
            if needed_given and not given:
                raise usage.UsageError(f"--{needed} needs --{option}")

    def _side_endpoint(
        self, reactor: Any, option: str, own_port: str
    ) -> IStreamServerEndpoint | None:
        """The endpoint of --metrics or --admin, which must be neither the
        signaling port nor another side port: players must never reach them,
        nor they take the players' port."""
        given = self.given[option]
        description = given.value
        if not description:
            return None
        try:
            check_port_number(description)
            endpoint = endpoints.serverFromString(reactor, description)
        except Exception as error:
            problem = f"{description!r} is not usable: {error}"
            raise usage.UsageError(given.problem(option, problem)) from None
        port = port_number(description)
        for other, name in _TAKEN_BEFORE[option]:
            taken = self["port"] if other == "port" else self.given[other].value
            if port is not None and port != 0 and taken and port == port_number(taken):
                problem = f"{description!r} is the {name} (--{other} {taken!r}); give {own_port}"
                raise usage.UsageError(given.problem(option, problem))
        return cast(IStreamServerEndpoint, endpoint)


# The ports a side port is checked against, with what they are.
_TAKEN_BEFORE = {
    "metrics": (("port", "signaling port"),),
    "admin": (("port", "signaling port"), ("metrics", "metrics port")),
}


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


def _signaling_endpoint(reactor: Any, port: str, given: Given) -> IStreamServerEndpoint:
    default = default_port_description()
    description = port or default
    try:
        check_port_number(description)
        check_pem_directory(description)
        endpoint = endpoints.serverFromString(reactor, with_default_backlog(description, default))
    # Parsers raise all kinds of errors; each one means a bad --port.
    except Exception as error:
        problem = f"{description!r} is not usable: {error}"
        raise usage.UsageError(given.problem("port", problem)) from None
    return cast(IStreamServerEndpoint, endpoint)


class StandaloneService(SignalingService):
    """Under twistd, a port that cannot be opened ends the program with one
    clear line instead of a traceback (see `StartupFailed`). twistd opens the
    port in privilegedStartService, before it drops root for --uid/--gid.
    The service also brings the log observer (``--log-format``,
    ``--log-level``), makes a second SIGTERM end a drain, and serves the
    metrics (``--metrics``) and the admin API (``--admin``) on ports of
    their own (`SidePort`)."""

    def __init__(
        self,
        description: str,
        *args: Any,
        log_observer: ILogObserver | None = None,
        side_ports: list[SidePort] | None = None,
        companions: list[IService] | None = None,
        port_file: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.description = description
        self.port_file = PortFile(port_file) if port_file else None
        # Services that live and die with this one (a Redis store of used
        # tokens, the webhooks, the auth callback's connections), stopped
        # after it, in order.
        self.companions = companions or []
        self.log_observer = log_observer
        self._signals_before: dict[int, Any] = {}
        self.side_ports = side_ports or []

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
        self._open_side_ports()

    def startService(self) -> None:
        for companion in self.companions:
            companion.startService()
        super().startService()
        self._open_side_ports()
        if self.port_file is not None:
            ports: list[Deferred[Any]] = [self.listening]
            ports += [side_port.listening() for side_port in self.side_ports]
            try:
                self.port_file.start(ports)
            except PortFileError as error:
                raise StartupFailed(str(error)) from None
        # The process is the server's alone: its collector and its event loop
        # are tuned for it.
        from twisted.internet import reactor

        _internals.lean_event_loop(reactor)
        reactor.callWhenRunning(collector.settle_after_start)

    def _open_side_ports(self) -> None:
        for side_port in self.side_ports:
            side_port.open(self)

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
        for side_port in self.side_ports:
            stopping.addCallback(_then_close, side_port)
        for companion in self.companions:
            stopping.addCallback(_then_stop, companion)
        if self.port_file is not None:
            stopping.addBoth(_after, self.port_file.remove)
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


def _after(result: object, action: Callable[[], None]) -> object:
    action()
    return result


def _then_stop(result: object, service: IService) -> Any:
    return service.stopService()


def _then_close(result: object, side_port: SidePort) -> Any:
    return side_port.close()


class SidePort:
    """A port of its own beside the signaling port (``--metrics``,
    ``--admin``). Opened and closed by `StandaloneService` rather than by a
    MultiService, so that it stays up through a drain (the drain itself can
    be watched and steered) and closes only once the clients are gone.

    ``site`` makes what it serves from the service, once it opens; ``what``
    names that in the log line."""

    def __init__(
        self,
        option: str,
        description: str,
        endpoint: IStreamServerEndpoint,
        site: Callable[[StandaloneService], Site],
        what: str,
    ) -> None:
        self.option = option
        self.description = description
        self.endpoint = endpoint
        self.site = site
        self.what = what
        self.port: IListeningPort | None = None
        # Those waiting for the port (--port-file), told once it listens.
        self._waiting: list[Deferred[IListeningPort]] = []
        # Set from the first open (twistd opens before dropping root, then
        # starts) until it is closed.
        self.opened = False

    def open(self, service: StandaloneService) -> None:
        if self.opened:
            return
        self.opened = True
        waiting = self.endpoint.listen(self.site(service))
        failure = _failed_at_once(waiting)
        if failure is not None:
            problem = getattr(failure.value, "socketError", failure.getErrorMessage())
            raise StartupFailed(f"cannot listen on {self.description} (--{self.option}): {problem}")
        waiting.addCallbacks(self._listening, self._failed)

    def listening(self) -> Deferred[IListeningPort]:
        """Fires with the port once it listens (at once if it does)."""
        if self.port is not None:
            return succeed(self.port)
        waiting: Deferred[IListeningPort] = Deferred()
        self._waiting.append(waiting)
        return waiting

    def close(self) -> Deferred[Any] | None:
        self.opened = False
        port, self.port = self.port, None
        if port is None:
            return None
        stopped: Deferred[Any] = maybeDeferred(port.stopListening)
        return stopped

    def _failed(self, failure: Any) -> None:
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.errback(failure)
        _log.failure(
            "cannot serve {what} on {description}",
            failure,
            what=self.what,
            description=self.description,
        )

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.callback(port)
        address = port.getHost()
        _log.info(
            "serving {what} on {host} port {port}",
            what=self.what,
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", None),
        )
        return port


class StopsWith(Service):
    """A companion of `StandaloneService` that ends something with it: its
    ``stop`` (the webhooks' last deliveries, the auth callback's idle
    connections) runs once the service has stopped."""

    def __init__(self, stop: Callable[[], Deferred[None]]) -> None:
        self.stop = stop

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.stop()


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
        standalone.log_format,
        level,
        dict(parent) if parent is not None else None,
        # The lean event loop (`StandaloneService.startService`) says which
        # socket a legacy line logged during a read or write is about.
        _internals.handled_log_prefix,
    )
    service = StandaloneService(
        standalone.port or default_port_description(),
        options["config"],
        options["endpoint"],
        log_observer=observer,
        hooks=options.get("hooks"),
        side_ports=side_ports(options),
        companions=options.get("companions"),
        port_file=standalone.port_file,
    )
    add_webhooks(service, standalone)
    warn_if_turn_is_open(service)
    return service


def side_ports(options: Options) -> list[SidePort]:
    """The metrics' and the admin API's ports, those that are on."""
    standalone: StandaloneConfig = options["standalone"]
    found = []
    metrics = options.get("metrics_endpoint")
    if metrics is not None:
        found.append(
            SidePort("metrics", standalone.metrics, metrics, _metrics_site, "metrics at /metrics")
        )
    admin = options.get("admin_endpoint")
    if admin is not None:
        token, token_auth = standalone.admin_token.encode("utf-8"), options.get("token_auth")

        def admin_site(service: StandaloneService) -> Site:
            from .server.admin import AdminResource, AdminSite

            # On a cluster node, every node's lobbies.
            control = service.admin_control
            max_lobby_size = service.config.core.max_lobby_size
            resource = AdminResource(
                control,
                token,
                token_auth=token_auth,
                clock=service.clock,
                max_lobby_size=max_lobby_size,
            )
            return AdminSite(resource)

        found.append(SidePort("admin", standalone.admin, admin, admin_site, "the admin API"))
    return found


def _metrics_site(service: StandaloneService) -> Site:
    root = Resource()
    root.putChild(b"metrics", service.metrics_resource())
    return MetricsSite(root)  # type: ignore[no-untyped-call]


def add_webhooks(service: StandaloneService, standalone: StandaloneConfig) -> None:
    """--webhook: every lobby event POSTed, signed, to each URL; the last
    ones (the lobbies closing) delivered after the service stops, for a
    bounded time."""
    if not standalone.webhook_urls:
        return
    from .server.webhooks import WebhookSender

    sender = WebhookSender(
        standalone.webhook_urls,
        standalone.webhook_secret.encode("utf-8"),
        node=service.node.node_id if service.node is not None else "",
        registry=service.metrics_registry,
        queue_limit=standalone.webhook_queue,
    )
    service.add_observer(sender.observe)
    service.companions.append(StopsWith(sender.stop))


# What the start says when /ice-servers hands TURN credentials to anyone.
OPEN_TURN_WARNING = (
    "--turn without --token-secret-file: anyone who can reach this port gets TURN "
    "credentials from GET /ice-servers and can relay any traffic through your TURN server. "
    "Close it with token auth (--token-secret-file): /ice-servers then wants the same "
    "?token= as the WebSocket. --allowed-origin does not close it: /ice-servers answers "
    "every origin, and a program that is no browser sends any Origin it likes"
)


def warn_if_turn_is_open(service: SignalingService) -> None:
    """One warning line at start when TURN credentials go to whoever asks."""
    if service.ice.config.turn_urls and service.ice.authenticate is None:
        _log.warn(OPEN_TURN_WARNING)
