// A raw HTTP/1.1 client for the file server tests: request targets go out byte for byte (no
// normalisation, unlike node:http), and the replies are parsed from what came back.
import net from 'node:net';

/** One response: status, headers (lower-case names) and body. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses the responses in `data` (Content-Length bodies only, as srv sends). */
export function parseReplies(data: Buffer, head = false): { replies: Reply[]; rest: Buffer } {
  const replies: Reply[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = data.toString('latin1', at, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const k = l.indexOf(':');
      headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim();
    }
    const len = head ? 0 : Number(headers['content-length'] ?? 0);
    if (data.length < end + 4 + len) break;
    replies.push({ status, headers, body: data.subarray(end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return { replies, rest: data.subarray(at) };
}

/**
 * Sends `raw` on a new connection and collects every byte until the server closes (the last
 * request says Connection: close) or 5 s pass. No half-close: srv ends a connection at the
 * peer's FIN, before answering what came with it.
 */
export function exchange(port: number, raw: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    const timer = setTimeout(() => c.destroy(), 5000);
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    c.on('error', reject);
    c.write(raw);
  });
}

/** GET `target` (sent byte for byte, no normalisation) with Connection: close. */
export async function get(port: number, target: string): Promise<Reply> {
  const data = await exchange(port, `GET ${target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
  const r = parseReplies(data).replies[0];
  if (!r) throw new Error(`no reply to ${target}: ${JSON.stringify(data.toString('latin1'))}`);
  return r;
}
