// Just enough HTTP/1.x for a hello server: find where a request head ends, judge its request
// line, and read the three headers that decide what happens to the connection (Connection,
// Content-Length, Transfer-Encoding). Works on bytes in place: no strings, no allocation per
// request. The responses are pre-built once; only their Date is rewritten, once a second.

/** Heads longer than this are refused with 431 (nginx's large_client_header_buffers is 8k too). */
export const MAX_HEAD = 8192;

/** What scanHead() found; one shared instance, valid until the next call. */
export const head = {
  /** 200, or the error to answer with: 400 malformed, 431 too large, 501 chunked body, 505 not HTTP/1.x. */
  status: 200,
  /** Whether the connection may carry another request after this one. */
  keepAlive: true,
  /** HTTP/1.0 asked for keep-alive explicitly, and so must be told it got it. */
  keepAlive10: false,
  /** Body bytes that follow the head (Content-Length), to be skipped. */
  bodyLength: 0,
  /** The request line's method, buf[methodStart, methodEnd), and target, buf[targetStart, targetEnd) (set once the request line is judged well-formed). */
  methodStart: 0,
  methodEnd: 0,
  targetStart: 0,
  targetEnd: 0,
};

const CR = 13, LF = 10, SP = 32, HTAB = 9, COLON = 58;

/** tchar (RFC 9110 §5.6.2): what method and header names are made of. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN[c.charCodeAt(0)] = 1;

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const CONNECTION = ascii('connection');
const CONTENT_LENGTH = ascii('content-length');
const TRANSFER_ENCODING = ascii('transfer-encoding');
const CLOSE = ascii('close');
const KEEP_ALIVE = ascii('keep-alive');

/** buf[at, at + lower.length) equals `lower`, ignoring ASCII case. */
function equalsLower(buf: Uint8Array, at: number, lower: Uint8Array): boolean {
  for (let k = 0; k < lower.length; k++) if ((buf[at + k] | 0x20) !== lower[k]) return false;
  return true;
}

/** Whether the comma-separated list in buf[from, to) holds `token` (case-insensitive). */
function hasToken(buf: Uint8Array, from: number, to: number, token: Uint8Array): boolean {
  let i = from;
  while (i < to) {
    while (i < to && (buf[i] === SP || buf[i] === HTAB || buf[i] === 44)) i++;
    let e = i;
    while (e < to && buf[e] !== 44) e++;
    let t = e;
    while (t > i && (buf[t - 1] === SP || buf[t - 1] === HTAB)) t--;
    if (t - i === token.length && equalsLower(buf, i, token)) return true;
    i = e;
  }
  return false;
}

/** `METHOD SP target SP HTTP/d.d` in buf[from, to): 0 if not, else the version as 10 * major + minor. */
function requestLineVersion(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  while (i < to && buf[i] < 128 && TOKEN[buf[i]] === 1) i++;
  if (i === from || i >= to || buf[i] !== SP) return 0;
  head.methodStart = from;
  head.methodEnd = i;
  const target = ++i;
  while (i < to && buf[i] > SP && buf[i] !== 127) i++;
  if (i === target || i >= to || buf[i] !== SP) return 0;
  head.targetStart = target;
  head.targetEnd = i;
  i++;
  if (to - i !== 8 || buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 || buf[i + 3] !== 80 || buf[i + 4] !== 47 || buf[i + 6] !== 46) return 0;
  const major = buf[i + 5] - 48, minor = buf[i + 7] - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return 0;
  return 10 * major + minor || -1; // HTTP/0.0 is well-formed, but no version we speak
}

/** A decimal Content-Length in buf[from, to), or -1. */
function parseLength(buf: Uint8Array, from: number, to: number): number {
  if (from === to || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function refuse(status: number, end: number): number {
  head.status = status;
  head.keepAlive = false;
  return end;
}

/**
 * Looks for one request head in buf[start, end). Returns -1 if it is not complete yet (and is
 * still within MAX_HEAD), else the offset just past it, with `head` filled in. A refusal
 * (head.status !== 200) may be decided before the head is complete; the connection is then
 * answered and closed, so the offset returned does not matter.
 */
export function scanHead(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  // RFC 9112 §2.2: empty lines before a request line are ignored (some clients send a CRLF after a body).
  while (i < end && (buf[i] === CR || buf[i] === LF)) i++;
  const limit = Math.min(end, start + MAX_HEAD);
  let version = 0;
  let keepAlive = false;
  let keepAlive10 = false;
  let bodyLength = 0;
  let lineStart = i;
  for (; i < limit; i++) {
    if (buf[i] !== LF) continue;
    const lineEnd = i > lineStart && buf[i - 1] === CR ? i - 1 : i; // bare LF tolerated (RFC 9112 §2.2)
    if (version === 0) {
      version = requestLineVersion(buf, lineStart, lineEnd);
      if (version === 0) return refuse(400, end);
      if (version < 10 || version >= 20) return refuse(505, end);
      keepAlive = version >= 11;
    } else if (lineEnd === lineStart) {
      head.status = 200;
      head.keepAlive = keepAlive;
      head.keepAlive10 = keepAlive10;
      head.bodyLength = bodyLength;
      return i + 1;
    } else {
      const first = buf[lineStart];
      if (first === SP || first === HTAB) return refuse(400, end); // obs-fold: refused, as RFC 9112 §5.2 allows
      let colon = lineStart;
      while (colon < lineEnd && buf[colon] !== COLON) colon++;
      if (colon === lineStart || colon === lineEnd) return refuse(400, end);
      let v = colon + 1;
      while (v < lineEnd && (buf[v] === SP || buf[v] === HTAB)) v++;
      let ve = lineEnd;
      while (ve > v && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
      const nameLength = colon - lineStart;
      if (nameLength === CONNECTION.length && equalsLower(buf, lineStart, CONNECTION)) {
        if (hasToken(buf, v, ve, CLOSE)) keepAlive = false;
        else if (version === 10 && hasToken(buf, v, ve, KEEP_ALIVE)) keepAlive = keepAlive10 = true;
      } else if (nameLength === CONTENT_LENGTH.length && equalsLower(buf, lineStart, CONTENT_LENGTH)) {
        bodyLength = parseLength(buf, v, ve);
        if (bodyLength < 0) return refuse(400, end);
      } else if (nameLength === TRANSFER_ENCODING.length && equalsLower(buf, lineStart, TRANSFER_ENCODING)) {
        return refuse(501, end); // a chunked body has no length we could skip without decoding it
      }
    }
    lineStart = i + 1;
  }
  return end - start > MAX_HEAD ? refuse(431, end) : -1;
}

/** An answer made per request (the busy and status pages): status line, headers and body, Date now. */
export function makeResponse(status: string, contentType: string, body: string, keepAlive: boolean, keepAlive10: boolean): Buffer {
  const connection = !keepAlive ? 'Connection: close\r\n' : keepAlive10 ? 'Connection: keep-alive\r\n' : '';
  const bytes = Buffer.byteLength(body);
  return Buffer.from(`HTTP/1.1 ${status}\r\nServer: evpoll\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Content-Type: ${contentType}\r\nContent-Length: ${bytes}\r\nCache-Control: no-cache\r\n${connection}\r\n${body}`);
}

/** A pre-built response whose Date can be rewritten in place. */
class Response {
  readonly bytes: Buffer;
  readonly #dateAt: number;
  constructor(status: string, headers: string, body: string) {
    const text = `HTTP/1.1 ${status}\r\nServer: evpoll\r\nDate: ${new Date().toUTCString()}\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n${headers}\r\n${body}`;
    this.bytes = Buffer.from(text, 'latin1');
    this.#dateAt = text.indexOf('Date: ') + 6;
  }

  /** `date` is an IMF-fixdate, always 29 bytes (RFC 9110 §5.6.7), so it fits in place. */
  setDate(date: string): void {
    this.bytes.write(date, this.#dateAt, 'latin1');
  }
}

export const responses = {
  hello: new Response('200 OK', '', 'hello\n'),
  /** HTTP/1.0 with Connection: keep-alive must be told it was kept (RFC 9112 §9.3). */
  helloKeepAlive10: new Response('200 OK', 'Connection: keep-alive\r\n', 'hello\n'),
  helloClose: new Response('200 OK', 'Connection: close\r\n', 'hello\n'),
  400: new Response('400 Bad Request', 'Connection: close\r\n', 'bad request\n'),
  431: new Response('431 Request Header Fields Too Large', 'Connection: close\r\n', 'request header fields too large\n'),
  501: new Response('501 Not Implemented', 'Connection: close\r\n', 'transfer-encoding not implemented\n'),
  505: new Response('505 HTTP Version Not Supported', 'Connection: close\r\n', 'http version not supported\n'),
};

const all = Object.values(responses);
let shownSecond = 0;

/** Keeps every response's Date current; cheap to call often (does something once a second). */
export function refreshDate(nowMs: number): void {
  const second = Math.floor(nowMs / 1000);
  if (second === shownSecond) return;
  shownSecond = second;
  const date = new Date(second * 1000).toUTCString();
  for (const r of all) r.setDate(date);
}
