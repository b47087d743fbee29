"""A bare TCP echo server on Twisted's reactor: the floor of `rate`.

    python bench/echo.py PORT_FILE [--twisted-loop]

``bench/run.py --others twisted-echo`` measures it in the rate scenario
(the load generator's "echo" protocol: one line per message, sent back as
it came). It does no WebSocket framing, no JSON and no lobby work: what it
costs per message is what Twisted's reactor and the socket calls cost alone,
the least any server on this reactor can spend. Its loop is made lean as
our server's is (`lean_event_loop`: no legacy log context per event);
``--twisted-loop`` keeps Twisted's own. `bench/echo.mjs` is the same on
Node. It listens on a port of 127.0.0.1 it is given by the system and
writes ``127.0.0.1:PORT`` to PORT_FILE.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import protocol, reactor

from webrtc_signal.server._internals import lean_event_loop


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def main() -> None:
    if "--twisted-loop" not in sys.argv[2:]:
        lean_event_loop(reactor)
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    Path(sys.argv[1]).write_text(f"127.0.0.1:{port.getHost().port}\n")
    reactor.run()


if __name__ == "__main__":
    main()
