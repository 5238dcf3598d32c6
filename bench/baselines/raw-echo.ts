/**
 * RAW baseline: a uWebSockets.js HTTP echo with no worker hop, the ceiling of any HTTP front
 * on this machine. usage: node raw-echo.js   (prints {"port": N})
 */
import uWS from 'uWebSockets.js';

const app = uWS.App();
app.post('/*', (res) => {
  let chunks: Buffer[] = [];
  res.onAborted(() => {
    chunks = [];
  });
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!isLast) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(body));
  });
});
app.listen('127.0.0.1', 0, (s) => {
  if (!s) process.exit(1);
  console.log(JSON.stringify({ port: uWS.us_socket_local_port(s) }));
});
