/**
 * A Server-Sent Events parser, as the HTML standard defines the format: lines end in
 * CRLF, LF or CR; a line starting with ":" is a comment; "field: value" sets a field (one
 * leading space dropped); data lines are joined with LF; a blank line dispatches the
 * event, unless it has no data; the id persists across events.
 */
export interface SSEMessage {
  /** The event's name ("message" when the stream names none). */
  event: string;
  data: string;
  /** The last id the stream set (the Last-Event-ID to resume from). */
  id: string;
  /** The reconnection time the stream asked for, if any. */
  retry?: number;
}

/** Reads a byte stream as SSE messages. */
export async function* parseSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id = "";
  let retry: number | undefined;
  let sawCR = false; // the previous chunk ended in CR: a leading LF belongs to it
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let chunk = decoder.decode(value, { stream: true });
      if (sawCR && chunk.startsWith("\n")) chunk = chunk.slice(1);
      sawCR = chunk.endsWith("\r");
      buffer += chunk;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        if (end < 0) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { event: event || "message", data: data.join("\n"), id, retry };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        switch (field) {
          case "event":
            event = val;
            break;
          case "data":
            data.push(val);
            break;
          case "id":
            if (!val.includes("\0")) id = val;
            break;
          case "retry":
            if (/^\d+$/.test(val)) retry = Number(val);
            break;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}
