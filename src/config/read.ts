/** Reading a config file's bytes: UTF-8 checked line by line, and read errors an admin can act on. */

import { TextDecoder } from 'node:util';

export function readErrorMessage(path: string, err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  switch (code) {
    case 'ENOENT':
      return `cannot read config file ${path}: no such file (ENOENT)`;
    case 'EACCES':
    case 'EPERM':
      return `cannot read config file ${path}: permission denied (${code}); run as root or fix the file's permissions`;
    case 'EISDIR':
      return `cannot read config file ${path}: it is a directory (EISDIR)`;
    default:
      return `cannot read config file ${path}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Decodes UTF-8; on invalid bytes, decodes with replacement and reports the first bad line. */
export function decodeUtf8(buf: Buffer): { text: string; badLine?: number } {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return { text: strict.decode(buf) };
  } catch {
    // Find the first line holding invalid bytes.
  }
  let line = 1;
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x0a) {
      try {
        strict.decode(buf.subarray(start, i));
      } catch {
        return { text: buf.toString('utf8'), badLine: line };
      }
      line += 1;
      start = i + 1;
    }
  }
  return { text: buf.toString('utf8'), badLine: 0 };
}
