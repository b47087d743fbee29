// A bare TCP echo server on Node: the floor of `rate` for Node (see echo.py).
//
//   node bench/echo.mjs PORT_FILE
import { writeFileSync } from "node:fs";
import net from "node:net";

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("data", (data) => socket.write(data));
  socket.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => writeFileSync(process.argv[2], `127.0.0.1:${server.address().port}\n`));
